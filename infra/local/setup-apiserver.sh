#!/usr/bin/env bash
# setup-apiserver.sh — build (once, cached) the local Kubernetes data-plane binaries:
#
#   ${BRFED_CACHE:-$HOME/.cache/brfed}/k8s/bin/crd-apiserver   our main.go (infra/local/apiserver) over
#                                                              upstream k8s.io/apiextensions-apiserver
#   ${BRFED_CACHE:-$HOME/.cache/brfed}/k8s/bin/etcd            etcd from Debian's etcd-server package
#
# Only Debian *sid* packages the apiextensions-apiserver Go sources, so this uses a PRIVATE apt
# configuration (suite sid on the machine's own Debian mirror, an empty dpkg status, lists and
# archives under the cache). Nothing is installed into the system: the .debs are downloaded with
# --download-only and unpacked with dpkg-deb -x under the cache; Go builds offline from them
# (GO111MODULE=off, GOPATH = the unpacked /usr/share/gocode, no module proxy, no cgo).
#
# Cache key = sha256 of main.go + this script. Binaries present and key unchanged ⇒ exit at once.
# The unpacked .debs are kept, so a changed key only re-runs `go build` (seconds, warm Go cache);
# BRFED_REFRESH_DEBS=1 forces a fresh apt download (sid moves: its versions may change).
# The .deb versions used are recorded in k8s/deb-versions.txt and printed.
# Also unpacks Debian's python3-yaml under k8s/pyyaml: dataplanes.sh's fallback PyYAML when the
# machine's python3 has none (Debian's own python3 is "externally managed": no pip --user there).
#
# Env: BRFED_CACHE (cache root), BRFED_DEBIAN_MIRROR (override the mirror URL),
#      BRFED_REFRESH_DEBS=1 (re-download the .debs).
# Needs: root (apt-get's private download only), apt-get, dpkg-deb, sha256sum, flock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${BRFED_CACHE:-$HOME/.cache/brfed}
K=$CACHE/k8s
MAIN_GO=$HERE/apiserver/main.go
PACKAGES=(golang-k8s-apiextensions-apiserver-dev golang-go etcd-server)
# the packages whose versions matter most (printed on every run; the full list is in the file)
KEY_PACKAGES='^(golang-k8s-apiextensions-apiserver-dev|golang-k8s-apiserver-dev|golang-k8s-client-go-dev|golang-k8s-apimachinery-dev|golang-go|golang-[0-9.]+-go|etcd-server|python3-yaml) '

die() { echo "setup-apiserver: ERROR: $*" >&2; exit 1; }
[ -f "$MAIN_GO" ] || die "missing $MAIN_GO"

# The key is taken once, at the start, and main.go is built from the copy made right after it: an
# edit during a build then leaves a key mismatch (rebuilt next time), never a stale binary.
KEY=$(cat "$MAIN_GO" "$HERE/setup-apiserver.sh" | sha256sum | cut -d' ' -f1)
is_built() {
  [ -x "$K/bin/crd-apiserver" ] && [ -x "$K/bin/etcd" ] && [ -f "$K/cache-key" ] &&
    [ "$(cat "$K/cache-key")" = "$KEY" ] && [ -f "$K/deb-versions.txt" ]
}
print_summary() {
  echo "setup-apiserver: $K/bin/{crd-apiserver,etcd} up to date (key $(cut -c1-12 "$K/cache-key"))"
  echo "setup-apiserver: built from Debian packages (all $(wc -l <"$K/deb-versions.txt") in $K/deb-versions.txt):"
  grep -E "$KEY_PACKAGES" "$K/deb-versions.txt" | sed 's/^/  /'
}

# Fast path: no lock, no subprocess beyond sha256sum.
if is_built; then print_summary; exit 0; fi

mkdir -p "$K"
MAIN_COPY=$(mktemp "${TMPDIR:-/tmp}/brfed-main.XXXXXX")
trap 'rm -f "$MAIN_COPY"' EXIT
cp "$MAIN_GO" "$MAIN_COPY"
[ "$(cat "$MAIN_COPY" "$HERE/setup-apiserver.sh" | sha256sum | cut -d' ' -f1)" = "$KEY" ] ||
  die "$MAIN_GO changed while starting; run again"
exec 9>"$K/.lock"
flock 9                                   # concurrent callers: the first builds, the others wait
if is_built; then print_summary; exit 0; fi   # someone else built it while we waited

if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then die "needs apt-get and dpkg-deb (Debian)"; fi
T0=$(date +%s)
log() { echo "setup-apiserver: [$(( $(date +%s) - T0 ))s] $*"; }

# ---------------------------------------------------------------- 1. .debs (private apt, sid)
fetch_debs() {
  local A=$K/apt mirror keyring=""
  rm -rf "$K/debs" "$K/root" "$K/debs.stamp"
  mkdir -p "$A"/{lists/partial,cache,empty,state} "$K/debs/partial"
  mirror=${BRFED_DEBIAN_MIRROR:-}
  if [ -z "$mirror" ]; then  # the machine's own Debian mirror (deb822 first, then one-line format)
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/{for(i=2;i<=NF;i++)print $i}' |
             grep -v -e security -e '^cdrom' | head -n1 || true)
  fi
  if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
             awk '$1=="deb"{for(i=2;i<=NF;i++) if($i !~ /^\[/ && $i !~ /\]$/){print $i; break}}' |
             grep -v security | head -n1 || true)
  fi
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt; set BRFED_DEBIAN_MIRROR"
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] &&
    keyring="[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
  echo "deb ${keyring}${mirror} sid main" >"$A/sources.list"
  : >"$A/state/status"      # empty dpkg status: apt resolves the whole closure from sid
  APT_OPTS=(-o Dir::Etc::sourcelist="$A/sources.list" -o Dir::Etc::sourceparts="$A/empty"
            -o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts="$A/empty"
            -o Dir::State::lists="$A/lists" -o Dir::State::status="$A/state/status"
            -o Dir::Cache="$A/cache" -o Dir::Cache::pkgcache="" -o Dir::Cache::srcpkgcache=""
            -o Dir::Cache::archives="$K/debs" -o APT::Sandbox::User=root
            -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
            -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
            -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
            -o Acquire::IndexTargets::deb::CNF::DefaultEnabled=false
            -o Acquire::Languages=none)
  log "apt-get update (private config: $mirror sid)"
  apt-get "${APT_OPTS[@]}" update -qq >"$K/apt-update.log" 2>&1 ||
    die "private apt-get update failed; see $K/apt-update.log"
  log "apt-get --download-only ${PACKAGES[*]} (about 360 debs, 350 MB)"
  apt-get "${APT_OPTS[@]}" install --download-only -y -qq --no-install-recommends "${PACKAGES[@]}" \
    >"$K/apt-download.log" 2>&1 || die "private apt-get download failed; see $K/apt-download.log"
  # PyYAML for dataplanes.sh's YAML->JSON step on machines whose python3 lacks it: only the one
  # .deb (no dependencies; its pure-Python part runs on any python3 >= 3.8)
  log "apt-get download python3-yaml (fallback PyYAML for dataplanes.sh)"
  (cd "$K/debs" && apt-get "${APT_OPTS[@]}" download python3-yaml) >>"$K/apt-download.log" 2>&1 ||
    die "private apt-get download python3-yaml failed; see $K/apt-download.log"
  touch "$K/debs.stamp"
}

unpack_debs() {
  local f tmp=$K/deb-versions.txt.tmp
  rm -rf "$K/root" "$K/pyyaml"; mkdir -p "$K/root"
  : >"$tmp"
  for f in "$K"/debs/*.deb; do
    case ${f##*/} in
      golang-*|etcd-server_*) dpkg-deb -x "$f" "$K/root"
                              dpkg-deb -f "$f" Package Version Architecture | awk '{printf "%s ", $2} END {print ""}' >>"$tmp" ;;
      python3-yaml_*)         rm -rf "$K/pyyaml"; dpkg-deb -x "$f" "$K/pyyaml"
                              dpkg-deb -f "$f" Package Version Architecture | awk '{printf "%s ", $2} END {print ""}' >>"$tmp" ;;
    esac
  done
  sed -i 's/ $//' "$tmp"
  sort -o "$tmp" "$tmp"
  mv "$tmp" "$K/deb-versions.txt"
  touch "$K/root.stamp"
}

if [ "${BRFED_REFRESH_DEBS:-0}" = 1 ] || [ ! -f "$K/debs.stamp" ]; then
  rm -f "$K/root.stamp"
  fetch_debs
fi
if [ ! -f "$K/root.stamp" ] || [ ! -f "$K/deb-versions.txt" ]; then
  log "unpacking golang-*.deb and etcd-server.deb under $K/root"
  unpack_debs
fi

# ---------------------------------------------------------------- 2. etcd
mkdir -p "$K/bin"
[ -x "$K/root/usr/bin/etcd" ] || die "etcd-server.deb did not provide usr/bin/etcd (see $K/deb-versions.txt)"
cp -f "$K/root/usr/bin/etcd" "$K/bin/etcd.tmp" && mv -f "$K/bin/etcd.tmp" "$K/bin/etcd"

# ---------------------------------------------------------------- 3. crd-apiserver (offline go build)
GOROOT_DIR=$(ls -d "$K"/root/usr/lib/go-1.* 2>/dev/null | sort -V | tail -n1)
if [ -z "$GOROOT_DIR" ] || [ ! -x "$GOROOT_DIR/bin/go" ]; then die "no Go toolchain unpacked under $K/root/usr/lib"; fi
APIEXT_VERSION=$(awk '$1=="golang-k8s-apiextensions-apiserver-dev"{print $2}' "$K/deb-versions.txt")
[ -n "$APIEXT_VERSION" ] || die "golang-k8s-apiextensions-apiserver-dev missing from $K/deb-versions.txt"
# Debian's 0.36.4-1 is Kubernetes v1.36.4 (the staging repos' v0.x tags mirror v1.x)
KVER=$(echo "$APIEXT_VERSION" | sed -E 's/^([0-9]+:)?0\.([0-9]+)\.([0-9]+).*/1.\2.\3/')
KMINOR=$(echo "$KVER" | cut -d. -f2)
SRC=$K/gopath/src/brfed.local/crd-apiserver
mkdir -p "$SRC"
cp -f "$MAIN_COPY" "$SRC/main.go"
log "go build crd-apiserver (Kubernetes v$KVER, $(basename "$GOROOT_DIR"); from scratch: 4-5 min, 1.2 GB RAM)"
VPKG=k8s.io/component-base/version
(
  export GOROOT=$GOROOT_DIR PATH=$GOROOT_DIR/bin:$PATH GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local \
         GOFLAGS='' CGO_ENABLED=0 GOPATH="$K/gopath:$K/root/usr/share/gocode" GOCACHE="$K/gocache" \
         GOTMPDIR='' GOENV=off
  cd "$SRC"
  nice -n 10 go build -trimpath -o "$K/bin/crd-apiserver.tmp" \
    -ldflags "-s -w -X $VPKG.gitVersion=v$KVER -X $VPKG.gitMajor=1 -X $VPKG.gitMinor=$KMINOR -X $VPKG.gitTreeState=clean" \
    brfed.local/crd-apiserver
) >"$K/go-build.log" 2>&1 || { cat "$K/go-build.log" >&2; die "go build failed; see $K/go-build.log"; }
mv -f "$K/bin/crd-apiserver.tmp" "$K/bin/crd-apiserver"

echo "$KEY" >"$K/cache-key"
log "done: $(stat -c '%n (%s bytes)' "$K/bin/crd-apiserver" "$K/bin/etcd" | tr '\n' ' ')"
"$K/bin/etcd" --version 2>/dev/null | head -n1 | sed 's/^/setup-apiserver: /' || true
echo "setup-apiserver: .deb versions used (Package Version Arch):"
sed 's/^/  /' "$K/deb-versions.txt"
print_summary

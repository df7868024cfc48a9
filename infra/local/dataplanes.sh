#!/usr/bin/env bash
# dataplanes.sh — brfed's local Kubernetes data planes: N independent "clusters" on loopback, each
# its own etcd + crd-apiserver (upstream k8s.io/apiextensions-apiserver with our main.go, built by
# setup-apiserver.sh), serving the real Kubernetes API for the pingcap.com CRDs.
#
#   dataplanes.sh start [N]       start dp1..dpN (default 3), apply the CRDs, wait until served
#   dataplanes.sh stop            stop every data plane (apiservers, then etcds); delete etcd data
#   dataplanes.sh stop-one NAME   stop NAME's apiserver only (etcd and data stay): "API down"
#   dataplanes.sh start-one NAME  start NAME's apiserver again on the same port (and its etcd if down)
#   dataplanes.sh env             print `export KUBECONFIG=...`
#   dataplanes.sh status          one line per data plane
#
# Cluster i (name dpi = kubeconfig context = cluster = brfed's k8sClusterName):
#   apiserver https://127.0.0.1:$((17442+i)), etcd client 127.0.0.1:$((27780+2*i)), peer +1.
# World dir ${BRFED_WORLD_DIR:-<repo>/.world}: kubeconfig (an administrator: group system:masters,
# for the tests, the simulated operator and the CLI), functions.kubeconfig (brfed's functions: user
# brfed-functions in group brfed, with only the rights infra/dataplane/brfed-rbac.yaml grants where
# it is bound), operator.kubeconfig (the simulated TiDB Operator: user tidb-operator, cluster-wide
# rights as the real operator's ClusterRole gives), pki/ (CA, serving cert, the three client certs;
# made once), dataplanes/ (pids, etcd data), logs/.
# CRDs: infra/crds/*.yaml, or every pingcap.com_*.yaml in $BRFED_UPSTREAM_CRDS when that is set;
# always infra/local/rbac-crds/*.yaml (the RBAC kinds the API server authorizes with, main.go).
# Needs: bash, curl, openssl, python3 (with PyYAML, or the one setup-apiserver.sh unpacks).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORLD=${BRFED_WORLD_DIR:-$REPO/.world}
CACHE=${BRFED_CACHE:-$HOME/.cache/brfed}
BIN=$CACHE/k8s/bin
DP=$WORLD/dataplanes
LOGS=$WORLD/logs
PKI=$WORLD/pki
KUBECONFIG_FILE=$WORLD/kubeconfig
FUNCTIONS_KUBECONFIG_FILE=$WORLD/functions.kubeconfig
OPERATOR_KUBECONFIG_FILE=$WORLD/operator.kubeconfig
API_BASE_PORT=17442      # apiserver of dpi: 17442+i
ETCD_BASE_PORT=27780     # etcd of dpi: client 27780+2i, peer 27781+2i
READY_TIMEOUT=${BRFED_DP_READY_TIMEOUT:-60}    # seconds, per wait
STOP_TIMEOUT=${BRFED_DP_STOP_TIMEOUT:-20}      # seconds before SIGKILL

die() { echo "dataplanes: ERROR: $*" >&2; exit 1; }
say() { echo "dataplanes: $*"; }
now_ms() { date +%s%3N; }

# ------------------------------------------------------------------ naming and processes
index_of() {   # dp3 -> 3
  [[ $1 =~ ^dp([1-9][0-9]?)$ ]] || die "bad data plane name '$1' (expected dp1, dp2, ...)"
  echo "${BASH_REMATCH[1]}"
}
api_port()  { echo $((API_BASE_PORT + $1)); }
etcd_port() { echo $((ETCD_BASE_PORT + 2 * $1)); }
peer_port() { echo $((ETCD_BASE_PORT + 2 * $1 + 1)); }

known_names() {  # data planes this world has (dirs under $DP), in order
  local d
  [ -d "$DP" ] || return 0
  for d in "$DP"/dp*; do if [ -d "$d" ]; then basename "$d"; fi; done | sort -V
}

# pid_of NAME KIND -> pid if the pid file names a live process of that kind (guards pid reuse)
pid_of() {
  local f=$DP/$1/$2.pid pid cmd
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  case $2 in
    etcd)      [[ $cmd == *"$BIN/etcd "*"--name $1 "* ]] || return 1 ;;
    apiserver) [[ $cmd == *"$BIN/crd-apiserver "*"--secure-port=$(api_port "$(index_of "$1")") "* ]] || return 1 ;;
  esac
  echo "$pid"
}
running() { pid_of "$1" "$2" >/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# stop_pids TIMEOUT LABEL PID... : SIGTERM, wait, SIGKILL what is left after TIMEOUT seconds
stop_pids() {
  local timeout=$1 label=$2 pid t left; shift 2
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for ((t = 0; t < timeout * 20; t++)); do
    left=""; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left="$left $pid"; done
    [ -z "$left" ] && return 0
    sleep 0.05
  done
  say "$label did not exit within ${timeout}s after SIGTERM; SIGKILL$left"
  # shellcheck disable=SC2086
  kill -KILL $left 2>/dev/null || true
  for ((t = 0; t < 100; t++)); do
    left=""; for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left="$left $pid"; done
    [ -z "$left" ] && return 0
    sleep 0.05
  done
  die "$label still alive after SIGKILL:$left"
}

# ------------------------------------------------------------------ https with the admin cert
kcurl() {   # kcurl URL [curl args...]  (silent, no --fail: callers look at the status code; a
            # non-curl User-Agent, because the apiserver pretty-prints JSON for curl)
  local url=$1; shift
  curl "${CURL_TLS[@]}" --max-time 30 "$@" "$url"
}
CURL_TLS=(-sS -A brfed-dataplanes --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key")
BODY=/dev/null   # where http_code leaves the response body (set per caller: parallel callers differ)
http_code() {   # http_code URL [curl args...] -> HTTP status (000 when no answer); body to $BODY
  kcurl "$@" -o "$BODY" -w '%{http_code}' 2>/dev/null || true
}

# ------------------------------------------------------------------ PKI + kubeconfig
make_pki() {
  [ -f "$PKI/admin.crt" ] && [ -f "$PKI/functions.crt" ] && [ -f "$PKI/operator.crt" ] && [ -f "$PKI/server.crt" ] &&
    [ -f "$PKI/core.kubeconfig" ] && return 0
  command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"
  local tmp=$PKI.tmp.$$
  rm -rf "$tmp"; mkdir -p "$tmp"
  (
    cd "$tmp"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=brfed-local-ca" \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.crt
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=brfed-admin" -keyout admin.key -out admin.csr
    printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out admin.crt
    # brfed's functions: no group but `brfed`, the subject of infra/dataplane/brfed-rbac.yaml
    openssl req -newkey rsa:2048 -nodes -subj "/O=brfed/CN=brfed-functions" -keyout functions.key -out functions.csr
    openssl x509 -req -in functions.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out functions.crt
    # the simulated TiDB Operator: an identity of its own (the real one's rights are cluster-wide)
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=tidb-operator" -keyout operator.key -out operator.csr
    openssl x509 -req -in operator.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile admin.ext -out operator.crt
    rm -f ./*.csr ./*.ext ca.srl
    # upstream's options insist on a kubeconfig for the "core" API; there is none, so it points at
    # a closed port and is never contacted (main.go gives the server an empty informer factory)
    cat >core.kubeconfig <<'EOF'
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
EOF
    chmod 600 ./*.key
  ) >"$LOGS/pki.log" 2>&1 || die "creating the PKI failed; see $LOGS/pki.log"
  rm -rf "$PKI"; mv "$tmp" "$PKI"
}

write_kubeconfigs() {  # write_kubeconfigs N: the administrator's and the functions'
  write_kubeconfig "$1" admin brfed-admin "$KUBECONFIG_FILE"
  write_kubeconfig "$1" functions brfed-functions "$FUNCTIONS_KUBECONFIG_FILE"
  write_kubeconfig "$1" operator tidb-operator "$OPERATOR_KUBECONFIG_FILE"
}

write_kubeconfig() {  # write_kubeconfig N CERT USER FILE
  local n=$1 cert=$2 user=$3 file=$4 i tmp=$4.tmp.$$
  local ca crt key
  ca=$(base64 -w0 <"$PKI/ca.crt"); crt=$(base64 -w0 <"$PKI/$cert.crt"); key=$(base64 -w0 <"$PKI/$cert.key")
  {
    echo "# written by infra/local/dataplanes.sh: one context per local data plane"
    echo "apiVersion: v1"
    echo "kind: Config"
    echo "current-context: dp1"
    echo "clusters:"
    for ((i = 1; i <= n; i++)); do
      echo "- name: dp$i"
      echo "  cluster: {server: \"https://127.0.0.1:$(api_port $i)\", certificate-authority-data: $ca}"
    done
    echo "users:"
    echo "- name: $user"
    echo "  user: {client-certificate-data: $crt, client-key-data: $key}"
    echo "contexts:"
    for ((i = 1; i <= n; i++)); do
      echo "- name: dp$i"
      echo "  context: {cluster: dp$i, user: $user}"
    done
  } >"$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$file"
}

# ------------------------------------------------------------------ processes
start_etcd() {   # start_etcd NAME
  local name=$1 i pid
  i=$(index_of "$name")
  running "$name" etcd && return 0
  port_busy "$(etcd_port "$i")" && die "etcd port $(etcd_port "$i") for $name is already in use by another process"
  port_busy "$(peer_port "$i")" && die "etcd peer port $(peer_port "$i") for $name is already in use by another process"
  mkdir -p "$DP/$name"
  echo "---- $(date -Is) start etcd $name" >>"$LOGS/etcd-$name.log"
  # --unsafe-no-fsync: test data only; a lost write on a machine crash does not matter here
  setsid "$BIN/etcd" --name "$name" --data-dir "$DP/$name/etcd" \
    --listen-client-urls "http://127.0.0.1:$(etcd_port "$i")" \
    --advertise-client-urls "http://127.0.0.1:$(etcd_port "$i")" \
    --listen-peer-urls "http://127.0.0.1:$(peer_port "$i")" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(peer_port "$i")" \
    --initial-cluster "$name=http://127.0.0.1:$(peer_port "$i")" \
    --initial-cluster-state new --initial-cluster-token "brfed-$name" \
    --unsafe-no-fsync --log-level warn \
    </dev/null >>"$LOGS/etcd-$name.log" 2>&1 &
  pid=$!
  echo "$pid" >"$DP/$name/etcd.pid"
}

start_apiserver() {   # start_apiserver NAME
  local name=$1 i pid
  i=$(index_of "$name")
  running "$name" apiserver && return 0
  port_busy "$(api_port "$i")" && die "apiserver port $(api_port "$i") for $name is already in use by another process"
  mkdir -p "$DP/$name"
  echo "---- $(date -Is) start crd-apiserver $name" >>"$LOGS/apiserver-$name.log"
  setsid "$BIN/crd-apiserver" \
    --bind-address=127.0.0.1 --secure-port="$(api_port "$i")" \
    --etcd-servers="http://127.0.0.1:$(etcd_port "$i")" \
    --tls-cert-file="$PKI/server.crt" --tls-private-key-file="$PKI/server.key" \
    --client-ca-file="$PKI/ca.crt" --kubeconfig="$PKI/core.kubeconfig" \
    </dev/null >>"$LOGS/apiserver-$name.log" 2>&1 &
  pid=$!
  echo "$pid" >"$DP/$name/apiserver.pid"
}

wait_ready() {   # wait_ready NAME : /readyz of NAME answers ok (it needs etcd too)
  local name=$1 i url deadline code
  i=$(index_of "$name"); url="https://127.0.0.1:$(api_port "$i")/readyz"
  deadline=$(( $(now_ms) + READY_TIMEOUT * 1000 ))
  while :; do
    code=$(http_code "$url")
    [ "$code" = 200 ] && return 0
    running "$name" apiserver || {
      tail -n 20 "$LOGS/apiserver-$name.log" >&2 || true
      die "crd-apiserver of $name exited; see $LOGS/apiserver-$name.log"; }
    running "$name" etcd || {
      tail -n 20 "$LOGS/etcd-$name.log" >&2 || true
      die "etcd of $name exited; see $LOGS/etcd-$name.log"; }
    if [ "$(now_ms)" -gt "$deadline" ]; then
      kcurl "$url?verbose" >&2 || true
      die "$name not ready after ${READY_TIMEOUT}s (last /readyz: $code); see $LOGS/apiserver-$name.log and $LOGS/etcd-$name.log"
    fi
    sleep 0.05
  done
}

# ------------------------------------------------------------------ CRDs
crd_files() {   # the CRD manifests to apply, one per line
  local f
  if [ -n "${BRFED_UPSTREAM_CRDS:-}" ]; then
    [ -d "$BRFED_UPSTREAM_CRDS" ] || die "BRFED_UPSTREAM_CRDS=$BRFED_UPSTREAM_CRDS is not a directory"
    for f in "$BRFED_UPSTREAM_CRDS"/pingcap.com_*.yaml; do [ -f "$f" ] && echo "$f"; done
  else
    for f in "$REPO"/infra/crds/*.yaml; do [ -f "$f" ] && echo "$f"; done
  fi
}

# A python3 that can import yaml, in this order: python3 on PATH; $BRFED_CACHE/venv/bin/python;
# /usr/bin/python3; python3 + the PyYAML that setup-apiserver.sh unpacks from Debian's
# python3-yaml .deb (so a fresh machine needs no pip and no system package).
PY=()
find_python() {
  [ ${#PY[@]} -gt 0 ] && return 0
  local p
  for p in python3 "$CACHE/venv/bin/python" /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml' >/dev/null 2>&1; then PY=("$p"); return 0; fi
  done
  local dist=$CACHE/k8s/pyyaml/usr/lib/python3/dist-packages
  for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && [ -d "$dist/yaml" ] &&
       PYTHONPATH=$dist "$p" -c 'import yaml' >/dev/null 2>&1; then PY=(env "PYTHONPATH=$dist" "$p"); return 0; fi
  done
  die "no python3 with PyYAML found (tried python3, $CACHE/venv/bin/python, /usr/bin/python3, $dist); install python3"
}

# crd_json FILE -> prints "JSON NAME GROUP VERSION PLURAL": the manifest as compact JSON
# (converted once, cached by content hash) and the facts needed to wait for it to be served
crd_json() {
  local f=$1 h out
  h=$(sha256sum "$f" | cut -c1-32)
  out=$CACHE/crd-json/$h.json
  if [ ! -s "$out" ] || [ ! -s "$out.facts" ]; then
    find_python
    mkdir -p "$CACHE/crd-json"
    "${PY[@]}" - "$f" "$out.tmp.$$" <<'EOF' >&2 || die "converting $f to JSON failed"
import json, sys, yaml
src, dst = sys.argv[1], sys.argv[2]
loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
with open(src) as fh:
    docs = [d for d in yaml.load_all(fh, Loader=loader) if d]
if len(docs) != 1 or docs[0].get("kind") != "CustomResourceDefinition":
    sys.exit("%s: expected exactly one CustomResourceDefinition document, found %d" % (src, len(docs)))
crd = docs[0]
spec = crd["spec"]
versions = [v for v in spec["versions"] if v.get("served")]
version = next((v for v in versions if v.get("storage")), versions[0])["name"]
with open(dst, "w") as fh:
    json.dump(crd, fh, separators=(",", ":"))
with open(dst + ".facts", "w") as fh:
    fh.write("%s %s %s %s\n" % (crd["metadata"]["name"], spec["group"], version, spec["names"]["plural"]))
EOF
    mv "$out.tmp.$$.facts" "$out.facts"
    mv "$out.tmp.$$" "$out"
  fi
  echo "$out $(cat "$out.facts")"
}

# apply_crds NAME CRDLIST : server-side apply each CRD of CRDLIST (lines from crd_json): creates
# it, or replaces what an earlier apply wrote (force: whoever created it); then waits until every
# CRD is Established, its resource answers a LIST, and its group is in the /apis discovery list
apply_crds() {
  local name=$1 list=$2 i base code json crd group version plural deadline pending
  local BODY=$TMPD/body.$name
  i=$(index_of "$name"); base="https://127.0.0.1:$(api_port "$i")"
  while read -r json crd group version plural; do
    code=$(http_code "$base/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$crd?fieldManager=brfed-dataplanes&force=true" \
           -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary "@$json")
    case $code in
      200|201) ;;
      *) cat "$BODY" >&2 2>/dev/null || true; echo >&2
         die "applying $crd to $name failed (HTTP $code); see $LOGS/apiserver-$name.log" ;;
    esac
  done <"$list"
  # Established: watch each CRD (a GET poll would re-serialize the whole CRD, 460 KB for upstream's
  # TidbCluster, on every try and slow the server down); the watch stream goes to a file that is
  # grepped, and the curl is stopped by its own pid
  local wfile wpid ok
  while read -r json crd group version plural; do
    wfile=$TMPD/watch.$name.$crd
    curl "${CURL_TLS[@]}" -N --max-time "$((READY_TIMEOUT + 5))" -o "$wfile" \
      "$base/apis/apiextensions.k8s.io/v1/customresourcedefinitions?watch=1&fieldSelector=metadata.name%3D$crd&timeoutSeconds=$READY_TIMEOUT" \
      2>>"$TMPD/watch.err" &
    wpid=$!
    ok=0
    while :; do
      if [ -f "$wfile" ] && grep -q '"type":"Established","status":"True"' "$wfile"; then ok=1; break; fi
      kill -0 "$wpid" 2>/dev/null || break     # the watch ended (timeout or error) without it
      sleep 0.05
    done
    kill "$wpid" 2>/dev/null || true
    wait "$wpid" 2>/dev/null || true
    [ "$ok" = 1 ] || die "$name: CRD $crd not Established within ${READY_TIMEOUT}s; see $LOGS/apiserver-$name.log"
  done <"$list"
  deadline=$(( $(now_ms) + READY_TIMEOUT * 1000 ))
  while :; do
    pending=""
    while read -r json crd group version plural; do
      code=$(http_code "$base/apis/$group/$version/$plural?limit=1")
      [ "$code" = 200 ] || { pending="$pending $crd(LIST $code)"; continue; }
      # the legacy /apis group list (kube clients' discovery) is fed asynchronously by main.go
      code=$(http_code "$base/apis")
      { [ "$code" = 200 ] && grep -q "\"name\":\"$group\"" "$BODY"; } || pending="$pending $group(not in /apis)"
    done <"$list"
    [ -z "$pending" ] && return 0
    [ "$(now_ms)" -gt "$deadline" ] && die "$name: CRDs not served after ${READY_TIMEOUT}s:$pending; see $LOGS/apiserver-$name.log"
    sleep 0.05
  done
}

crds_needed() {   # writes $TMPD/crds: one line per CRD to apply (see crd_json)
  local f files
  files=$(crd_files) || exit 1
  [ -n "$files" ] || die "no CRD manifests found in ${BRFED_UPSTREAM_CRDS:-$REPO/infra/crds}"
  files=$files$'\n'$(for f in "$HERE"/rbac-crds/*.yaml; do [ -f "$f" ] && echo "$f"; done)
  : >"$TMPD/crds"
  while read -r f; do crd_json "$f" >>"$TMPD/crds" || exit 1; done <<<"$files"
}

# ------------------------------------------------------------------ commands
setup() {
  mkdir -p "$DP" "$LOGS"
  TMPD=$(mktemp -d "${TMPDIR:-/tmp}/brfed-dp.XXXXXX")
  trap 'rm -rf "$TMPD"' EXIT
}

build() {   # cached: instant when built; the per-package version list goes to the log only
  "$HERE/setup-apiserver.sh" 2>&1 | tee "$LOGS/setup-apiserver.log" | grep -v '^  ' ||
    die "setup-apiserver.sh failed; see $LOGS/setup-apiserver.log"
}

cmd_start() {
  local n=${1:-3} i name t0 pids=() rc=0 pid
  [[ $n =~ ^[1-9][0-9]?$ ]] || die "start N: N must be 1..99, got '$n'"
  t0=$(now_ms)
  setup
  # a world already running a different number of data planes is not silently resized
  for name in $(known_names); do
    i=$(index_of "$name")
    if [ "$i" -gt "$n" ] && { running "$name" apiserver || running "$name" etcd; }; then
      die "$name is running but start asked for $n data planes; run '$0 stop' first"
    fi
  done
  build
  make_pki
  crds_needed
  for ((i = 1; i <= n; i++)); do start_etcd "dp$i"; done
  for ((i = 1; i <= n; i++)); do start_apiserver "dp$i"; done
  write_kubeconfigs "$n"
  for ((i = 1; i <= n; i++)); do wait_ready "dp$i"; done
  say "apiservers ready after $(( $(now_ms) - t0 )) ms; applying $(wc -l <"$TMPD/crds") CRDs from ${BRFED_UPSTREAM_CRDS:-infra/crds}: $(awk '{printf "%s ", $2}' "$TMPD/crds")"
  for ((i = 1; i <= n; i++)); do apply_crds "dp$i" "$TMPD/crds" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  [ "$rc" = 0 ] || die "applying CRDs failed (see above)"
  say "started dp1..dp$n in $(( $(now_ms) - t0 )) ms: $(for ((i = 1; i <= n; i++)); do printf 'dp%d=https://127.0.0.1:%d ' "$i" "$(api_port $i)"; done)"
  say "export KUBECONFIG=$KUBECONFIG_FILE"
}

cmd_stop() {
  local name pids=() pid t0
  t0=$(now_ms)
  setup
  for name in $(known_names); do pid=$(pid_of "$name" apiserver) && pids+=("$pid"); done
  stop_pids "$STOP_TIMEOUT" "crd-apiserver" "${pids[@]}"
  pids=()
  for name in $(known_names); do pid=$(pid_of "$name" etcd) && pids+=("$pid"); done
  stop_pids "$STOP_TIMEOUT" "etcd" "${pids[@]}"
  for name in $(known_names); do
    rm -rf "${DP:?}/$name/etcd"
    rm -f "$DP/$name/apiserver.pid" "$DP/$name/etcd.pid"
  done
  say "stopped all data planes in $(( $(now_ms) - t0 )) ms (etcd data removed; pki and kubeconfig kept)"
}

cmd_stop_one() {
  local name=${1:?usage: $0 stop-one NAME} pid
  index_of "$name" >/dev/null
  setup
  if pid=$(pid_of "$name" apiserver); then
    stop_pids "$STOP_TIMEOUT" "crd-apiserver of $name" "$pid"
    say "$name: apiserver stopped (etcd and data kept); https://127.0.0.1:$(api_port "$(index_of "$name")") refuses connections"
  else
    say "$name: apiserver was not running"
  fi
  rm -f "$DP/$name/apiserver.pid"
}

cmd_start_one() {
  local name=${1:?usage: $0 start-one NAME} t0
  index_of "$name" >/dev/null
  t0=$(now_ms)
  setup
  [ -d "$DP/$name" ] || die "$name is not part of this world ($DP); use '$0 start N'"
  [ -f "$PKI/admin.crt" ] || die "no PKI in $PKI; use '$0 start N'"
  [ -x "$BIN/crd-apiserver" ] || build
  crds_needed
  start_etcd "$name"
  start_apiserver "$name"
  wait_ready "$name"
  apply_crds "$name" "$TMPD/crds"    # no-op when already there; makes sure they are served again
  say "$name: apiserver up again on https://127.0.0.1:$(api_port "$(index_of "$name")") in $(( $(now_ms) - t0 )) ms"
}

cmd_env() { echo "export KUBECONFIG=$KUBECONFIG_FILE"; }

cmd_status() {
  local name i e a r crds
  setup
  BODY=$TMPD/body
  [ -n "$(known_names)" ] || { say "no data planes in $WORLD"; return 0; }
  for name in $(known_names); do
    i=$(index_of "$name")
    e=$(pid_of "$name" etcd || echo down); a=$(pid_of "$name" apiserver || echo down)
    r=-; crds=-
    if [ "$a" != down ]; then
      r=$(http_code "https://127.0.0.1:$(api_port "$i")/readyz")
      if [ "$(http_code "https://127.0.0.1:$(api_port "$i")/apis/apiextensions.k8s.io/v1/customresourcedefinitions")" = 200 ]; then
        crds=$(grep -o '"type":"Established","status":"True"' "$BODY" | wc -l)
      fi
    fi
    printf '%-5s apiserver=%-8s https://127.0.0.1:%d readyz=%-4s established-crds=%-3s etcd=%-8s 127.0.0.1:%d\n' \
      "$name" "$a" "$(api_port "$i")" "$r" "$crds" "$e" "$(etcd_port "$i")"
  done
  echo "KUBECONFIG=$KUBECONFIG_FILE"
}

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

case ${1:-} in
  start)     shift; cmd_start "$@" ;;
  stop)      shift; cmd_stop ;;
  stop-one)  shift; cmd_stop_one "$@" ;;
  start-one) shift; cmd_start_one "$@" ;;
  env)       cmd_env ;;
  status)    cmd_status ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac

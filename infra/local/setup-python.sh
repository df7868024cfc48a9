#!/usr/bin/env bash
# Builds (once) a Python venv of brfed and prints its directory on stdout.
#
#   venv="$(infra/local/setup-python.sh)" && "$venv/bin/python" ...      # the local world's
#   infra/local/setup-python.sh NAME REQUIREMENTS EXECUTABLE            # another one
#
# Without arguments: the local AWS world's venv, ${BRFED_CACHE:-$HOME/.cache/brfed}/venv, from
# infra/local/requirements.txt, which must provide cargo-lambda (and moto, boto3, yaml, awscli).
# With arguments: the venv NAME under the same cache from REQUIREMENTS, which must provide
# bin/EXECUTABLE (infra/aws/setup-lint.sh: checkov, apart because it pins its own boto3).
# A venv is keyed by a hash of its requirements plus the interpreter used; a warm run only
# compares that stamp (a few ms). A changed requirements file (or interpreter) rebuilds it.
# Interpreter: $BRFED_PYTHON, else python3.11, else python3 (must be >= 3.10).
# Works on a fresh Debian with CPython + pip even without the python3-venv package: the venv is
# then created --without-pip and filled by the host pip (`pip --python`, pip >= 22.3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${BRFED_CACHE:-$HOME/.cache/brfed}"
name="${1:-venv}"
req="${2:-$here/requirements.txt}"
exe="${3:-cargo-lambda}"
venv="$cache/$name"
stamp="$venv/.brfed-stamp"

py="${BRFED_PYTHON:-}"
if [[ -z "$py" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
fi
py_path="$(command -v "$py" || true)"
[[ -n "$py_path" ]] || { echo "setup-python: no $py on PATH" >&2; exit 1; }

# Key: requirements content + the interpreter's resolved path (no interpreter start on the warm path).
key="$( { cat "$req"; readlink -f "$py_path"; } | sha256sum | cut -c1-32)"

if [[ -f "$stamp" && "$(<"$stamp")" == "$key" && -x "$venv/bin/$exe" ]]; then
  echo "$venv"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/$name.lock"
flock 9
# Someone else may have built it while we waited for the lock.
if [[ -f "$stamp" && "$(<"$stamp")" == "$key" && -x "$venv/bin/$exe" ]]; then
  echo "$venv"
  exit 0
fi

if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "setup-python: $py is older than 3.10" >&2
  exit 1
fi

echo "setup-python: building $venv with $("$py" --version 2>&1) (takes about a minute)" >&2
start=$SECONDS
rm -rf "$venv"
if "$py" -m venv "$venv" >/dev/null 2>&1 && [[ -x "$venv/bin/pip" ]]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
else
  # Debian without python3-venv: no ensurepip. Create a bare venv, install into it with the host pip.
  rm -rf "$venv"
  "$py" -m venv --without-pip "$venv"
  "$py" -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check -r "$req" >&2
fi
if [[ $# -eq 0 ]]; then
  "$venv/bin/python" -c 'import moto, boto3, yaml, awscli' >&2
fi
[[ -x "$venv/bin/$exe" ]] || { echo "setup-python: $exe missing from $venv" >&2; exit 1; }
echo "$key" >"$stamp"
echo "setup-python: venv ready in $((SECONDS - start)) s" >&2
echo "$venv"

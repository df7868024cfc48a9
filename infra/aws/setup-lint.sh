#!/usr/bin/env bash
# Builds (once) the Python venv of `make lint`'s IaC policy scanner (checkov) and prints its
# directory on stdout.
#
#   venv="$(infra/aws/setup-lint.sh)" && "$venv/bin/checkov" ...
#
# The venv lives at ${BRFED_CACHE:-$HOME/.cache/brfed}/venv-lint, apart from the local world's
# venv (infra/local/setup-python.sh): checkov pins its own boto3, networkx and packaging, which
# the emulator's moto must not get. It is keyed by a hash of lint-requirements.txt plus the
# interpreter used; a warm run only compares that stamp (a few ms). A changed
# lint-requirements.txt (or interpreter) rebuilds it from scratch.
# Interpreter: $BRFED_PYTHON, else python3.11, else python3 (must be >= 3.10).
# Works on a fresh Debian with CPython + pip even without the python3-venv package: the venv is
# then created --without-pip and filled by the host pip (`pip --python`, pip >= 22.3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${BRFED_CACHE:-$HOME/.cache/brfed}"
venv="$cache/venv-lint"
req="$here/lint-requirements.txt"
stamp="$venv/.brfed-stamp"

py="${BRFED_PYTHON:-}"
if [[ -z "$py" ]]; then
  if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
fi
py_path="$(command -v "$py" || true)"
[[ -n "$py_path" ]] || { echo "setup-lint: no $py on PATH" >&2; exit 1; }

# Key: requirements content + the interpreter's resolved path (no interpreter start on the warm path).
key="$( { cat "$req"; readlink -f "$py_path"; } | sha256sum | cut -c1-32)"

if [[ -f "$stamp" && "$(<"$stamp")" == "$key" && -x "$venv/bin/checkov" ]]; then
  echo "$venv"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/venv-lint.lock"
flock 9
# Someone else may have built it while we waited for the lock.
if [[ -f "$stamp" && "$(<"$stamp")" == "$key" && -x "$venv/bin/checkov" ]]; then
  echo "$venv"
  exit 0
fi

if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "setup-lint: $py is older than 3.10" >&2
  exit 1
fi

echo "setup-lint: building $venv with $("$py" --version 2>&1) (takes about a minute)" >&2
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
[[ -x "$venv/bin/checkov" ]] || { echo "setup-lint: checkov missing from the venv" >&2; exit 1; }
echo "$key" >"$stamp"
echo "setup-lint: venv ready in $((SECONDS - start)) s" >&2
echo "$venv"

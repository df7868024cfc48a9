#!/usr/bin/env bash
# Builds (once) the Python venv of `make lint`'s IaC policy scanner (checkov) and prints its
# directory on stdout.
#
#   venv="$(infra/aws/setup-lint.sh)" && "$venv/bin/checkov" ...
#
# The venv lives at ${BRFED_CACHE:-$HOME/.cache/brfed}/venv-lint, apart from the local world's
# venv: checkov pins its own boto3, networkx and packaging, which the emulator's moto must not
# get. infra/local/setup-python.sh builds both the same way (keyed by the requirements and the
# interpreter, rebuilt when either changes; works without the python3-venv package).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../local/setup-python.sh" venv-lint "$here/lint-requirements.txt" checkov

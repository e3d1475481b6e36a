#!/usr/bin/env bash
# The test suite on a fresh machine: venv + dev install, services, then pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k emulator, -m "not integration").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh dev
bash scripts/services.sh
exec .venv/bin/python -m pytest "$@"

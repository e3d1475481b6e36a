#!/usr/bin/env bash
# The main job on a fresh machine: venv + install, then `shardline demo` (the bundled
# emulator, a sample input of 3,000 requests, a real run on the embedded broker).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/shardline demo "$@"

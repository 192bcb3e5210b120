#!/usr/bin/env bash
# Set everything up (idempotent) and run the whole default test suite: `bash scripts/test.sh [pytest args]`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_assets.sh
exec .venv/bin/python -m pytest -q "$@"

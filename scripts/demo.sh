#!/usr/bin/env bash
# Run the Bento demo (the orders example service) on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh embedded
exec .venv/bin/bento demo "$@"

#!/usr/bin/env bash
# Run the Bento demo (the orders example service, `bento demo`) on embedded defaults.
# Installs Bento with every client (so the broker demo works too) the first time only.
# Arguments go to `bento demo` (--data-dir DIR, --reset, --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all
exec .venv/bin/bento demo "$@"

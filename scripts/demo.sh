#!/usr/bin/env bash
# The main command: install into ./.venv, write the embedded sample and materialize every asset on it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh train  # the demo trains both stages on a tiny offline model
exec .venv/bin/eemo demo "$@"

#!/usr/bin/env bash
# The test command: install into ./.venv with the test and train extras and run the whole suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh test,train
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# The test command: install into ./.venv with the test, train and postgres extras and run the whole suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh test,train,postgres
# The UI test drives Debian's Chromium (skipped only when no chromium binary exists): install it when missing
# and we may (root with apt-get, as on CI).
if { ! command -v chromium || ! command -v chromedriver; } >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing chromium and chromium-driver (apt) for the UI test"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } >/tmp/eemo-apt-chromium.log 2>&1; then
    tail -20 /tmp/eemo-apt-chromium.log >&2
    echo "installing chromium failed (log: /tmp/eemo-apt-chromium.log); the UI test will be skipped" >&2
  fi
fi
# The Postgres tests start their own PostgreSQL cluster with Debian's server binaries (initdb, pg_ctl); they fail
# under CI=true when it cannot be had. Install it the same way.
if ! { command -v initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb"; } >/dev/null && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null; then
  echo "installing postgresql (apt) for the Postgres instance tests"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq postgresql; } >/tmp/eemo-apt-postgresql.log 2>&1; then
    tail -20 /tmp/eemo-apt-postgresql.log >&2
    echo "installing postgresql failed (log: /tmp/eemo-apt-postgresql.log); the Postgres tests cannot run" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"

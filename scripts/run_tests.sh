#!/usr/bin/env bash
# Install everything (the locked versions, dev tools, Debian's chromium for the browser test) and run lint,
# type checks and the whole test suite. Extra arguments go to pytest.
#   bash scripts/run_tests.sh --newest   the same checks with the newest releases instead of the lock, which is
#                                        refreshed when they pass (see scripts/setup_env.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; the browser test will be skipped"
fi
if [ "${1:-}" = "--newest" ]; then
  exec bash scripts/setup_env.sh --newest
fi
bash scripts/setup_env.sh dev
. "${CORRSTEER_VENV:-.venv}/bin/activate"
exec bash scripts/check.sh "$@"

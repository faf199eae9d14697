#!/usr/bin/env bash
# The whole test suite: unit tests (ctest) then black-box tests of the real
# binary with real clients (pytest under Debian's Python, which has
# python3-redis and python3-hiredis).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
# JavaScript test tools from npm (s3rver, kubernetes-models, hcl2json), pinned
# by package-lock.json; reinstalled when the lock file changes.
if [ ! -e tests/tools/node_modules/.package-lock.json ] || [ tests/tools/package-lock.json -nt tests/tools/node_modules/.package-lock.json ]; then
  (cd tests/tools && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "== unit tests (ctest)"
ctest --test-dir build --output-on-failure --parallel "$(nproc)"
echo "== integration tests (pytest)"
cd tests/integration
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@"

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
# The same unit tests built with AddressSanitizer and UBSan: a memory error
# or undefined behaviour fails the test that triggers it. SANITIZE_TESTS=0
# skips this stage on a developer's machine.
if [ "${SANITIZE_TESTS:-1}" != 0 ]; then
  echo "== unit tests under AddressSanitizer + UBSan (build-asan/)"
  BUILD_DIR=build-asan SANITIZE=address,undefined BUILD_TYPE=Sanitize TARGET=levee_unit_tests DEPS=none scripts/build.sh
  ctest --test-dir build-asan --output-on-failure --parallel "$(nproc)"
fi
# Fuzz targets (fuzz/README.md), each for FUZZ_SECONDS (0 skips), after
# their regression inputs.
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then
  echo "== fuzzing (libFuzzer + ASan + UBSan)"
  fuzz/build_and_run.sh "${FUZZ_SECONDS:-20}"
fi
echo "== integration tests (pytest)"
cd tests/integration
# -rs lists every skipped test with its reason (with CI set none may skip:
# conftest.py's require fails them); a test that hangs fails after 10 minutes;
# the 20 slowest are listed (the suite's time is CI's budget).
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider -rs --timeout 600 --durations=20 "$@"

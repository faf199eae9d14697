#!/usr/bin/env bash
# Installs what is missing (Debian packages) and builds levee into build/.
#   BUILD_TYPE=Debug scripts/build.sh     SANITIZE=address,undefined scripts/build.sh
#   DEPS=build BUILD_TESTS=OFF scripts/build.sh    only the binary (the Docker image's build stage)
#   BUILD_DIR=build-asan SANITIZE=address,undefined TARGET=levee_unit_tests scripts/build.sh
#                                                  one target (the sanitizer run of the unit tests)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh "${DEPS:-all}"
build_dir=${BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja \
  -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DLEVEE_BUILD_TESTS="${BUILD_TESTS:-ON}" \
  -DLEVEE_SANITIZE="${SANITIZE:-}" >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)" ${TARGET:+--target "$TARGET"}

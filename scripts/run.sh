#!/usr/bin/env bash
# Builds levee and starts it with its embedded defaults: data in ./levee-data,
# the Redis protocol on 127.0.0.1:6379, /healthz and /readyz on 127.0.0.1:9379.
# Any `levee serve` flag may follow, e.g. scripts/run.sh --port 7000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
exec build/levee serve "$@"

#!/usr/bin/env bash
# Builds the RESP parser fuzz target with clang (libFuzzer + ASan + UBSan)
# and runs it for SECONDS (default 30) from the seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
command -v clang++ >/dev/null || { echo "fuzz: clang++ not installed (apt-get install clang)"; exit 1; }
mkdir -p build/fuzz build/fuzz/corpus
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc \
  fuzz/resp_parser_fuzz.cc src/resp/parser.cc -o build/fuzz/resp_parser_fuzz
cp -n fuzz/corpus/* build/fuzz/corpus/ 2>/dev/null || true
build/fuzz/resp_parser_fuzz -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 build/fuzz/corpus

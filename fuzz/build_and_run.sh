#!/usr/bin/env bash
# Builds levee's libFuzzer targets with clang (libFuzzer + ASan + UBSan) and
# runs each for SECONDS (default 30) from its seed corpus in fuzz/corpus/.
#   fuzz/build_and_run.sh [SECONDS] [TARGET...]
# Prints each target's executions; exits non-zero on the first crash (its
# input is left in build/fuzz/crash-*: add it to fuzz/regressions/TARGET/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
command -v clang++ >/dev/null || { echo "fuzz: clang++ not installed (apt-get install clang)"; exit 1; }
out=build/fuzz
mkdir -p "$out"

# target: sources it needs besides its own file, and libraries.
declare -A sources=(
  [resp_parser]="src/resp/parser.cc"
  [wal_segment]="src/wal/log.cc src/wal/record.cc src/common/coding.cc src/common/status.cc src/common/file.cc src/common/logging.cc"
  [backup_object]="src/backup/names.cc src/backup/object.cc src/backup/repo.cc src/backup/store.cc src/backup/s3.cc src/backup/gce_token.cc src/common/coding.cc src/common/status.cc src/common/file.cc src/common/logging.cc src/common/version.cc"
  [repl_frame]="src/repl/stream.cc src/wal/record.cc src/common/coding.cc src/common/status.cc"
  [config]="src/common/config.cc src/common/status.cc src/common/file.cc src/common/logging.cc"
)
declare -A libs=(
  [resp_parser]=""
  [wal_segment]="-lz"
  [backup_object]="-lzstd -lsodium -lcrypto -lcurl -lz"
  [repl_frame]="-lzstd -lz"
  [config]="-lyaml-cpp"
)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(resp_parser wal_segment backup_object repl_frame config)

# Compiled nproc at a time.
pids=()
for t in "${targets[@]}"; do
  srcs=""
  for s in ${sources[$t]}; do [ -e "$s" ] && srcs="$srcs $s"; done
  # shellcheck disable=SC2086
  clang++ -std=c++20 -O1 -g1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc \
    "fuzz/${t}_fuzz.cc" $srcs ${libs[$t]} -lpthread -o "$out/${t}_fuzz" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$(nproc)" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done

for t in "${targets[@]}"; do
  work="$out/corpus-$t"
  mkdir -p "$work"
  cp -n "fuzz/corpus/$t"/* "$work/" 2>/dev/null || true
  # Every crash found so far, fixed: each must still pass.
  if [ -d "fuzz/regressions/$t" ] && [ -n "$(ls -A "fuzz/regressions/$t")" ]; then
    "$out/${t}_fuzz" "fuzz/regressions/$t"/* >"$out/$t-regressions.log" 2>&1 ||
      { cat "$out/$t-regressions.log"; echo "fuzz: $t: a regression input fails again"; exit 1; }
  fi
  log="$out/$t.log"
  if ! (cd "$out" && "./${t}_fuzz" -max_total_time="$seconds" -max_len=32768 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "corpus-$t" "../../fuzz/corpus/$t") >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz: $t crashed; the input is in $out/crash-* (add it to fuzz/regressions/$t/ with the fix)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz: $t: $runs executions in ${seconds}s, no crash"
done

#!/usr/bin/env bash
# Installs what levee needs from Debian's archive. Idempotent: packages already
# present are not reinstalled, and apt is not touched when nothing is missing.
#
#   scripts/install-deps.sh                  everything: build, runtime, tests, benchmarks
#   scripts/install-deps.sh build            what compiling levee needs
#   scripts/install-deps.sh runtime          what the built binary needs to run (the image's last stage)
#
# The Docker image (deploy/docker/Dockerfile) runs this same script, so the
# image installs what a fresh machine installs.
set -euo pipefail

build=(
  cmake g++ ninja-build pkg-config
  libleveldb-dev libsnappy-dev libasio-dev libcli11-dev libyaml-cpp-dev
  libspdlog-dev nlohmann-json3-dev libssl-dev zlib1g-dev libzstd-dev
  libsodium-dev libcurl4-openssl-dev libjemalloc-dev
)
# The shared libraries the binary links (readelf NEEDED; a test checks this
# list against the built binary), certificates for https object stores, and
# redis-cli for the Kubernetes init step that asks Sentinel for the primary.
runtime=(
  libleveldb1d libsnappy1v5 libyaml-cpp0.7 zlib1g libcurl4 libsodium23 libzstd1 libjemalloc2
  libssl3 libstdc++6 libgcc-s1 libc6 ca-certificates redis-tools
)
tests=(
  libgtest-dev libbenchmark-dev python3-pytest python3-redis python3-hiredis
  python3-kubernetes python3-yaml
  redis-server redis-tools redis-sentinel haproxy prometheus tmux iproute2 iptables
  awscli python3-botocore restic openssl
  clang libclang-rt-14-dev
  python3-fusepy python3-pytest-timeout
  dnsmasq-base python3-dnspython util-linux prometheus-redis-exporter
)
# Node.js and npm run the JavaScript test tools (tests/tools: s3rver, the
# manifest validator). A machine that already has a node (nvm, NodeSource)
# keeps it; a fresh Debian gets Debian's.
command -v npm >/dev/null 2>&1 || tests+=(nodejs npm)

case "${1:-all}" in
  build) packages=("${build[@]}") ;;
  runtime) packages=("${runtime[@]}") ;;
  all) packages=("${build[@]}" "${runtime[@]}" "${tests[@]}") ;;
  none) exit 0 ;;
  *) echo "install-deps: unknown group '$1' (use build, runtime, none or nothing for all)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

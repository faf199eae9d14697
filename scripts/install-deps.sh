#!/usr/bin/env bash
# Installs everything levee needs to build, test and benchmark, from Debian's
# archive. Idempotent: packages already present are not reinstalled, and apt is
# not touched at all when nothing is missing.
set -euo pipefail

packages=(
  # build
  cmake g++ ninja-build pkg-config
  # libraries
  libleveldb-dev libsnappy-dev libasio-dev libcli11-dev libyaml-cpp-dev
  libspdlog-dev nlohmann-json3-dev libssl-dev zlib1g-dev libzstd-dev
  libsodium-dev libcurl4-openssl-dev
  # tests and benchmarks
  libgtest-dev libbenchmark-dev python3-pytest python3-redis python3-hiredis
  redis-server redis-tools redis-sentinel haproxy prometheus tmux iproute2 iptables
  awscli python3-botocore restic
)

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

#!/bin/sh
# Sentinel's init step: writes a sentinel.conf into a writable emptyDir
# (Sentinel rewrites its file). It asks the other Sentinels which levee is
# the primary now, so a restarted Sentinel does not go back to watching
# levee-0 after a failover; with no answer (first start) it is levee-0.
#
# Environment: POD_NAME, POD_NAMESPACE, LEVEE_MASTER_NAME, LEVEE_SENTINELS
# (host:port of every Sentinel), LEVEE_FIRST (levee-0's host:port),
# LEVEE_PASSWORD_FILE, SENTINEL_HEADLESS_SERVICE, LEVEE_CLUSTER_DOMAIN,
# SENTINEL_CONFIG_OUT, SENTINEL_QUORUM, SENTINEL_DOWN_AFTER_MS.
set -eu
pod=${POD_NAME:?POD_NAME must be set from the downward API (metadata.name)}
ns=${POD_NAMESPACE:-default}
domain=${LEVEE_CLUSTER_DOMAIN:-cluster.local}
name=${LEVEE_MASTER_NAME:-levee}
out=${SENTINEL_CONFIG_OUT:-/data/sentinel.conf}
self="$pod.${SENTINEL_HEADLESS_SERVICE:-levee-sentinel-headless}.$ns.svc.$domain"
first=${LEVEE_FIRST:?LEVEE_FIRST must name levee-0 as host:port}

master="${first%:*} ${first##*:}"
for s in ${LEVEE_SENTINELS:-}; do
  case "$s" in "$pod".*) continue ;; esac
  answer=$(redis-cli -h "${s%:*}" -p "${s##*:}" --raw SENTINEL get-master-addr-by-name "$name" 2>/dev/null) || continue
  host=$(echo "$answer" | sed -n 1p)
  port=$(echo "$answer" | sed -n 2p)
  case "$port" in '' | *[!0-9]*) continue ;; esac
  master="$host $port"
  echo "sentinel-configure: $s says the primary is $master" >&2
  break
done

{
  echo "port 26379"
  echo "dir /data"
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  echo "sentinel announce-ip $self"
  echo "sentinel monitor $name $master ${SENTINEL_QUORUM:-2}"
  echo "sentinel down-after-milliseconds $name ${SENTINEL_DOWN_AFTER_MS:-5000}"
  echo "sentinel failover-timeout $name 60000"
  echo "sentinel parallel-syncs $name 1"
  if [ -n "${LEVEE_PASSWORD_FILE:-}" ] && [ -r "$LEVEE_PASSWORD_FILE" ]; then
    echo "sentinel auth-pass $name $(head -n 1 "$LEVEE_PASSWORD_FILE")"
  fi
} > "$out"
echo "sentinel-configure: $pod watches $master" >&2

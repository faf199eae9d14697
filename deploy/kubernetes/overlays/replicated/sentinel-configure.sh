#!/bin/sh
# Sentinel's init step: writes a sentinel.conf into a writable emptyDir
# (Sentinel rewrites its file). Which levee it watches, in this order:
#   1. what another Sentinel watches now (a restarted Sentinel must not go
#      back to levee-0 after a failover);
#   2. with no Sentinel answering (all restarted at once): the levee pod that
#      says it is the primary (ROLE), if exactly one does;
#   3. with neither (a first install, no levee pod up yet): LEVEE_FIRST.
# Two levee pods that both say they are the primary, or an unreadable
# password, stop the step with the reason (Kubernetes retries it).
#
# Sentinel gets the levee password (levee-auth Secret) three ways: to talk to
# levee (auth-pass), to answer clients (requirepass: without it any pod
# could SENTINEL FAILOVER or point Sentinel at a server of its choosing),
# and to talk to the other Sentinels (sentinel-pass).
#
# Names are fully qualified (<pod>.<service>.<namespace>.svc.<domain>):
# cluster DNS answers only those, and Sentinel hands out whatever it is given.
#
# Environment: POD_NAME, POD_NAMESPACE, LEVEE_MASTER_NAME, LEVEE_SENTINELS
# (host:port of every Sentinel), LEVEE_FIRST (levee-0's host:port),
# LEVEE_NODES (every levee pod's host:port), LEVEE_PASSWORD_FILE,
# SENTINEL_HEADLESS_SERVICE, LEVEE_CLUSTER_DOMAIN, SENTINEL_CONFIG_OUT,
# SENTINEL_QUORUM, SENTINEL_DOWN_AFTER_MS, SENTINEL_FAILOVER_TIMEOUT_MS.
#
# failover-timeout (10 s) bounds a failover whose promotion Sentinel does not
# see (its leader stalled or in TILT): it is abandoned, and any Sentinel
# starts a new one after twice the timeout. With Redis' default (3 min) the
# promoted pod would stay a primary no Sentinel names for 6 minutes.
set -eu
umask 077  # the file holds the password
pod=${POD_NAME:?POD_NAME must be set from the downward API (metadata.name)}
ns=${POD_NAMESPACE:-default}
domain=${LEVEE_CLUSTER_DOMAIN:-cluster.local}
name=${LEVEE_MASTER_NAME:-levee}
out=${SENTINEL_CONFIG_OUT:-/data/sentinel.conf}
self="$pod.${SENTINEL_HEADLESS_SERVICE:-levee-sentinel-headless}.$ns.svc.$domain"
first=${LEVEE_FIRST:?LEVEE_FIRST must name levee-0 as host:port}
pw_file=${LEVEE_PASSWORD_FILE:-/run/secrets/levee/password}

if [ ! -r "$pw_file" ] || [ -z "$(head -n 1 "$pw_file")" ]; then
  echo "sentinel-configure: cannot read the levee password at $pw_file (the levee-auth Secret, key \"password\"); not starting" >&2
  exit 1
fi
password=$(head -n 1 "$pw_file")
REDISCLI_AUTH=$password
export REDISCLI_AUTH

# qualify NAME: a pod or Service name inside this namespace, fully qualified.
qualify() {
  case "$1" in
    *.svc.* | *. ) echo "${1%.}" ;;
    *[!0-9.]*) echo "$1.$ns.svc.$domain" ;;
    *) echo "$1" ;;
  esac
}

# lookup NAME: the form to resolve: absolute (a trailing dot), so the
# resolver asks once instead of walking the search list first (ndots:5),
# which multiplies the wait when the cluster DNS does not answer.
lookup() { case "$1" in *[!0-9.]*) echo "${1%.}." ;; *) echo "$1" ;; esac; }

master=""
for s in ${LEVEE_SENTINELS:-}; do
  case "$s" in "$pod".*) continue ;; esac
  host=$(qualify "${s%:*}")
  answer=$(redis-cli -h "$(lookup "$host")" -p "${s##*:}" --raw SENTINEL get-master-addr-by-name "$name" 2>&1) || continue
  mhost=$(echo "$answer" | sed -n 1p)
  mport=$(echo "$answer" | sed -n 2p)
  case "$mport" in '' | *[!0-9]*) continue ;; esac
  master="$(qualify "$mhost") $mport"
  echo "sentinel-configure: $host says the primary is $master" >&2
  break
done

if [ -z "$master" ]; then
  found=""
  for n in ${LEVEE_NODES:-}; do
    host=$(qualify "${n%:*}")
    role=$(redis-cli -h "$(lookup "$host")" -p "${n##*:}" --raw ROLE 2>/dev/null | head -n 1) || continue
    if [ "$role" = master ]; then found="$found $host ${n##*:}"; fi
  done
  set -- $found
  if [ $# -gt 2 ]; then
    echo "sentinel-configure: no Sentinel answered and more than one levee pod says it is the primary ($found ); not starting: demote all but one (REPLICAOF host port) and the step retries" >&2
    exit 1
  elif [ $# -eq 2 ]; then
    master="$1 $2"
    echo "sentinel-configure: no Sentinel answered; $1 says it is the primary" >&2
  else
    master="$(qualify "${first%:*}") ${first##*:}"
    echo "sentinel-configure: no Sentinel and no levee primary answered (a first install); watching $master" >&2
  fi
fi

{
  echo "port 26379"
  echo "dir /data"
  echo "sentinel resolve-hostnames yes"
  echo "sentinel announce-hostnames yes"
  echo "sentinel announce-ip $self"
  echo "requirepass $password"
  echo "sentinel sentinel-pass $password"
  echo "sentinel monitor $name $master ${SENTINEL_QUORUM:-2}"
  echo "sentinel auth-pass $name $password"
  echo "sentinel down-after-milliseconds $name ${SENTINEL_DOWN_AFTER_MS:-5000}"
  echo "sentinel failover-timeout $name ${SENTINEL_FAILOVER_TIMEOUT_MS:-10000}"
  echo "sentinel parallel-syncs $name 1"
} > "$out"
echo "sentinel-configure: $pod watches $master" >&2

#!/bin/sh
# The levee container's preStop hook: a primary hands its role to a replica
# through Sentinel before Kubernetes stops it, so a rolling restart is a
# planned switchover (writes pause for about a second) instead of an
# unplanned failover (writes stop for down-after-milliseconds and more).
#
# A replica, a pod without Sentinels (the single overlay), or a primary no
# Sentinel agrees to fail over (no replica in sync: NOGOODSLAVE) stops as it
# is. The hook waits until a Sentinel names another pod, at most
# LEVEE_SWITCHOVER_TIMEOUT seconds (default 30; terminationGracePeriodSeconds
# covers it and levee's own shutdown).
#
# Environment: LEVEE_PORT, LEVEE_PASSWORD_FILE, LEVEE_SENTINELS_FILE (written
# by configure.sh: the master name, then the Sentinels), LEVEE_SWITCHOVER_TIMEOUT.
set -u
port=${LEVEE_PORT:-6379}
conf=${LEVEE_SENTINELS_FILE:-/run/levee/sentinels}
pw_file=${LEVEE_PASSWORD_FILE:-/run/secrets/levee/password}
timeout=${LEVEE_SWITCHOVER_TIMEOUT:-30}

[ -r "$conf" ] || exit 0
master=$(sed -n 1p "$conf")
sentinels=$(sed -n 2p "$conf")
[ -n "$sentinels" ] || exit 0
if [ -r "$pw_file" ]; then
  REDISCLI_AUTH=$(head -n 1 "$pw_file")
  export REDISCLI_AUTH
fi
[ "$(redis-cli -p "$port" --raw ROLE 2>/dev/null | head -n 1)" = master ] || exit 0

# lookup NAME: the form to resolve: absolute (a trailing dot), so the
# resolver asks once instead of walking the search list first (ndots:5),
# which multiplies the wait when the cluster DNS does not answer.
lookup() { case "$1" in *[!0-9.]*) echo "${1%.}." ;; *) echo "$1" ;; esac; }

ns=$(sed -n 's/^search \([^ ]*\).*/\1/p' /etc/resolv.conf)
end=$(( $(date +%s) + timeout ))
asked=""
# A replica that has just restarted is not promotable until Sentinel has
# seen it linked again (it asks every few seconds): NOGOODSLAVE is retried
# until the deadline.
while [ -z "$asked" ] && [ "$(date +%s)" -lt "$end" ]; do
  for s in $sentinels; do
    host=${s%:*}
    case "$host" in *.svc.*) ;; *) host="$host.$ns" ;; esac
    answer=$(redis-cli -h "$(lookup "$host")" -p "${s##*:}" --raw SENTINEL failover "$master" 2>&1)
    case "$answer" in
      OK | INPROG*) asked="$host:${s##*:}"; break ;;
    esac
    last="$host: $answer"
  done
  [ -n "$asked" ] || sleep 1
done
if [ -z "$asked" ]; then
  echo "prestop: no Sentinel started a switchover within ${timeout}s (last answer: ${last:-none}); stopping as the primary (Sentinel fails over after down-after-milliseconds)" >&2
  exit 0
fi
echo "prestop: $asked is switching the primary over" >&2

me=$(hostname -f 2>/dev/null || hostname)
while [ "$(date +%s)" -lt "$end" ]; do
  named=$(redis-cli -h "$(lookup "${asked%:*}")" -p "${asked##*:}" --raw SENTINEL get-master-addr-by-name "$master" 2>/dev/null | head -n 1)
  case "$named" in
    "" | "$me" | "$me".* | "$(hostname)".*) ;;
    *)
      if [ "$(redis-cli -p "$port" --raw ROLE 2>/dev/null | head -n 1)" != master ] ||
         [ "$(redis-cli -h "$(lookup "$named")" -p "$port" --raw ROLE 2>/dev/null | head -n 1)" = master ]; then
        echo "prestop: the primary is now $named" >&2
        exit 0
      fi ;;
  esac
  sleep 0.2
done
echo "prestop: no switchover within ${timeout}s; stopping anyway" >&2
exit 0

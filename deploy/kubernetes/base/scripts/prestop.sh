#!/bin/sh
# The levee container's preStop hook: a primary hands its role to a replica
# through Sentinel before Kubernetes stops it, so a rolling restart is a
# planned switchover (writes are refused for a second or two) instead of an
# unplanned failover (writes stop for down-after-milliseconds and more).
#
# Steps: wait until a Sentinel has seen every replica as the process it is
# now (after a replica's restart that takes up to 10 s, its INFO period);
# fence writes until every replica holds the last record; ask Sentinel to
# fail over until it names another pod; wait until every Sentinel that
# answers names it.
#
# A replica, a pod without Sentinels (the single overlay), or a primary no
# Sentinel agrees to fail over (no replica in sync: NOGOODSLAVE) stops as it
# is. The hook waits until a Sentinel names another pod, at most
# LEVEE_SWITCHOVER_TIMEOUT seconds (default 45: longer than the 30 s a Sentinel
# in TILT mode ignores requests; terminationGracePeriodSeconds, 60,
# covers it and levee's own shutdown).
#
# Environment: LEVEE_PORT, LEVEE_PASSWORD_FILE, LEVEE_SENTINELS_FILE (written
# by configure.sh: the master name, then the Sentinels), LEVEE_SWITCHOVER_TIMEOUT.
set -u
port=${LEVEE_PORT:-6379}
conf=${LEVEE_SENTINELS_FILE:-/run/levee/sentinels}
pw_file=${LEVEE_PASSWORD_FILE:-/run/secrets/levee/password}
timeout=${LEVEE_SWITCHOVER_TIMEOUT:-45}

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

# current SENTINEL PORT: the Sentinel has seen every replica that answers as
# the process it is now. Sentinel picks the replica to promote from the last
# INFO it read from each (every 10 s): a replica restarted since then looks
# linked and up to date to it, and a promotion sent to it as it restarts can
# stall the failover until failover-timeout. A replica that does not answer
# (its pod gone) is one Sentinel will not pick either.
current() {
  view=$(redis-cli -h "$(lookup "$1")" -p "$2" --raw SENTINEL REPLICAS "$master" 2>/dev/null | tr -d '\r') || return 1
  [ -n "$view" ] || return 1
  echo "$view" | awk 'NR % 2 == 1 { k = $0 } NR % 2 == 0 { if (k == "name") n = $0; if (k == "runid") r = $0;
    if (k == "flags") print n, r, $0 }' | {
    promotable=0
    while read -r name runid flags; do
      actual=$(redis-cli -h "$(lookup "${name%:*}")" -p "${name##*:}" --raw INFO server 2>/dev/null |
        tr -d '\r' | sed -n 's/^run_id://p')
      [ -n "$actual" ] || continue
      [ "$flags" = slave ] && [ "$runid" = "$actual" ] || return 1
      promotable=1
    done
    [ "$promotable" = 1 ]
  }
}

ns=$(sed -n 's/^search \([^ ]*\).*/\1/p' /etc/resolv.conf)
end=$(( $(date +%s) + timeout ))
# Writes still flow while Sentinel catches up (it reads each replica's INFO
# every 10 s): only then are they fenced.
seen=""
while [ -z "$seen" ] && [ "$(date +%s)" -lt "$end" ]; do
  for s in $sentinels; do
    host=${s%:*}
    case "$host" in *.svc.*) ;; *) host="$host.$ns" ;; esac
    if current "$host" "${s##*:}"; then seen=$host; break; fi
  done
  [ -n "$seen" ] || sleep 0.2
done
if [ -z "$seen" ]; then
  echo "prestop: no Sentinel saw every replica as it is now within ${timeout}s; stopping as the primary (Sentinel fails over after down-after-milliseconds)" >&2
  exit 0
fi

# Fence first: refuse new writes (NOREPLICAS) until every replica holds the
# primary's last record. Sentinel chooses the replica to promote from
# offsets it read up to 10 s ago: a replica that has just restarted (ready
# within replica-ready-max-lag-ms) could be promoted over one holding the
# newest acknowledged writes, which would then refuse to follow it. With
# every replica at the same record, any choice keeps them all.
info() { redis-cli -p "$port" INFO replication 2>/dev/null | tr -d '\r'; }
# Replicas that acknowledged within 2 s count (a link that went quiet is
# not one Sentinel would promote); at least one must.
caught_up() {
  i=$(info)
  head=$(echo "$i" | sed -n 's/^master_repl_offset://p')
  offsets=$(echo "$i" | sed -n 's/^slave[0-9]*:.*offset=\([0-9]*\),lag=\([0-2]\)$/\1/p')
  [ -n "$head" ] && [ -n "$offsets" ] || return 1
  for o in $offsets; do [ "$o" -ge "$head" ] || return 1; done
}
min_before=$(redis-cli -p "$port" --raw CONFIG GET min-replicas-to-write 2>/dev/null | sed -n 2p)
unfence() { redis-cli -p "$port" CONFIG SET min-replicas-to-write "${min_before:-0}" >/dev/null 2>&1; }
redis-cli -p "$port" CONFIG SET min-replicas-to-write 1000 >/dev/null
until caught_up; do
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "prestop: the replicas did not catch up within ${timeout}s; stopping as the primary. $(info | grep -E '^(master_repl_offset|slave[0-9])' | tr '\n' ' ')" >&2
    unfence
    exit 0
  fi
  sleep 0.1
done

me=$(hostname -f 2>/dev/null || hostname)

# switched: a Sentinel names another pod, which says it is the primary (or
# this one no longer does).
switched() {
  for s in $sentinels; do
    host=${s%:*}
    case "$host" in *.svc.*) ;; *) host="$host.$ns" ;; esac
    named=$(redis-cli -h "$(lookup "$host")" -p "${s##*:}" --raw SENTINEL get-master-addr-by-name "$master" 2>/dev/null | head -n 1)
    [ -n "$named" ] && break
  done
  case "$named" in "" | "$me" | "$me".* | "$(hostname)".*) return 1 ;; esac
  [ "$(redis-cli -p "$port" --raw ROLE 2>/dev/null | head -n 1)" != master ] ||
    [ "$(redis-cli -h "$(lookup "$named")" -p "$port" --raw ROLE 2>/dev/null | head -n 1)" = master ]
}

# Ask until it happens: a replica that has just restarted is not promotable
# until Sentinel has seen it linked again (NOGOODSLAVE, or a failover that
# Sentinel starts and then abandons), so the request is repeated every
# second until the deadline; INPROG means one is under way.
asked=""
last=""
tick=0
until switched; do
  tick=$((tick + 1))
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "prestop: no switchover within ${timeout}s (last answer: ${last:-none}); stopping as the primary (Sentinel fails over after down-after-milliseconds)" >&2
    unfence
    exit 0
  fi
  # Checked every 0.2 s, asked every second.
  [ $((tick % 5)) -eq 1 ] || { sleep 0.2; continue; }
  for s in $sentinels; do
    host=${s%:*}
    case "$host" in *.svc.*) ;; *) host="$host.$ns" ;; esac
    if [ -z "$asked" ] && ! current "$host" "${s##*:}"; then
      last="$host: has not seen every replica since it restarted"
      continue
    fi
    answer=$(redis-cli -h "$(lookup "$host")" -p "${s##*:}" --raw SENTINEL failover "$master" 2>&1)
    last="$host: $answer"
    case "$answer" in OK | INPROG*)
      [ -n "$asked" ] || echo "prestop: $host is switching the primary over" >&2
      asked=$host
      break ;;
    esac
  done
  sleep 0.2
done
echo "prestop: the primary is now $named" >&2

# Every Sentinel that answers must name it before this pod goes: one that
# missed the switchover (in TILT, or cut off) would otherwise see this pod
# go down while it still names it, and start a failover of its own — a
# second switch. Until then this pod stays up, a replica of the new primary.
agreed() {
  for s in $sentinels; do
    host=${s%:*}
    case "$host" in *.svc.*) ;; *) host="$host.$ns" ;; esac
    n=$(redis-cli -h "$(lookup "$host")" -p "${s##*:}" --raw SENTINEL get-master-addr-by-name "$master" 2>/dev/null | head -n 1)
    [ -z "$n" ] || [ "$n" = "$named" ] || return 1
  done
}
until agreed; do
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "prestop: not every Sentinel names $named within ${timeout}s; stopping" >&2
    exit 0
  fi
  sleep 0.2
done
exit 0

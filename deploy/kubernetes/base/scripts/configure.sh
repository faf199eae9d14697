#!/bin/sh
# levee's init step in Kubernetes: writes the configuration levee starts with
# to $LEVEE_CONFIG_OUT (an emptyDir), the ConfigMap's file plus this pod's
# replication settings, and the role it chose to $LEVEE_ROLE_OUT.
#
# Who is the primary, in this order:
#   1. LEVEE_UPSTREAM (host:port, second region): ordinal 0 replicates from it,
#      the other ordinals from this region's ordinal 0 (one stream crosses
#      the regions and fans out here).
#   2. Sentinel, when LEVEE_SENTINELS lists any (host:port ...): every
#      Sentinel is asked (SENTINEL MASTER) and the answer with the highest
#      config-epoch decides. If it names this pod (its FQDN, any shorter
#      form of it, or its IP), this pod is the primary, but only when a
#      majority of the Sentinels answered and no replica Sentinel knows of
#      says it is the primary. When none answers, or becoming the primary is
#      not certain, the step fails and Kubernetes retries it: a pod that
#      guessed its role could become a second primary.
#   3. No Sentinels (the single overlay): ordinal 0 is the primary, the
#      others replicate from it.
#
# Names are compared and written fully qualified
# (<pod>.<service>.<namespace>.svc.<domain>): cluster DNS answers only those,
# and Sentinel announces whatever form it was given.
#
# Environment: POD_NAME, POD_NAMESPACE, POD_IP (downward API),
# LEVEE_HEADLESS_SERVICE, LEVEE_CLUSTER_DOMAIN, LEVEE_PORT, LEVEE_SENTINELS,
# LEVEE_MASTER_NAME, LEVEE_PASSWORD_FILE (Sentinel's password, the levee-auth
# Secret), LEVEE_UPSTREAM, LEVEE_REPLICA_PRIORITY, LEVEE_CONFIG_SRC,
# LEVEE_CONFIG_OUT, LEVEE_ROLE_OUT.
set -eu

src=${LEVEE_CONFIG_SRC:-/etc/levee/levee.yaml}
out=${LEVEE_CONFIG_OUT:-/run/levee/levee.yaml}
role_out=${LEVEE_ROLE_OUT:-/run/levee/role}
pod=${POD_NAME:?POD_NAME must be set from the downward API (metadata.name)}
ns=${POD_NAMESPACE:-default}
headless=${LEVEE_HEADLESS_SERVICE:-levee-headless}
domain=${LEVEE_CLUSTER_DOMAIN:-cluster.local}
port=${LEVEE_PORT:-6379}
master_name=${LEVEE_MASTER_NAME:-levee}

ordinal=${pod##*-}
case "$ordinal" in
  '' | *[!0-9]*)
    echo "configure: POD_NAME '$pod' does not end in -<ordinal>; levee's manifests run it as a StatefulSet" >&2
    exit 1 ;;
esac
[ -r "$src" ] || { echo "configure: cannot read $src (the levee-config ConfigMap)" >&2; exit 1; }

# qualify NAME: a pod or Service name inside this namespace, fully qualified.
qualify() {
  case "$1" in
    *.svc.* | *. ) echo "${1%.}" ;;
    *[!0-9.]*) echo "$1.$ns.svc.$domain" ;;
    *) echo "$1" ;;  # an IPv4 address
  esac
}

# lookup NAME: the form to resolve: absolute (a trailing dot), so the
# resolver asks once instead of walking the search list first (ndots:5),
# which multiplies the wait when the cluster DNS does not answer.
lookup() { case "$1" in *[!0-9.]*) echo "${1%.}." ;; *) echo "$1" ;; esac; }

self="$pod.$headless.$ns.svc.$domain"
first="${pod%-*}-0.$headless.$ns.svc.$domain"
primary_host=""
primary_port=""
reason=""

if [ -n "${LEVEE_UPSTREAM:-}" ]; then
  if [ "$ordinal" = 0 ]; then
    primary_host=${LEVEE_UPSTREAM%:*}
    primary_port=${LEVEE_UPSTREAM##*:}
    reason="ordinal 0 of the second region follows the upstream"
  else
    primary_host=$first
    primary_port=$port
    reason="replicas of the second region follow its ordinal 0"
  fi
elif [ -n "${LEVEE_SENTINELS:-}" ]; then
  pw_file=${LEVEE_PASSWORD_FILE:-/run/secrets/levee/password}
  if [ ! -r "$pw_file" ]; then
    echo "configure: cannot read Sentinel's password at $pw_file (the levee-auth Secret, key \"password\"); not starting" >&2
    exit 1
  fi
  REDISCLI_AUTH=$(head -n 1 "$pw_file")
  export REDISCLI_AUTH
  # Every Sentinel is asked: one that missed a failover (restarted, in TILT,
  # cut off) still names the old primary, and a restarted old primary that
  # believed it would be a second one. The newest configuration (the highest
  # config-epoch) wins.
  errors=""
  listed=0
  answered=0
  best_epoch=-1
  for s in $LEVEE_SENTINELS; do
    listed=$((listed + 1))
    shost=$(qualify "${s%:*}")
    if ! answer=$(redis-cli -h "$(lookup "$shost")" -p "${s##*:}" --raw SENTINEL MASTER "$master_name" 2>&1); then
      errors="$errors
  $shost: $answer"
      continue
    fi
    # SENTINEL MASTER answers field/value pairs, one per line with --raw.
    set -- $(echo "$answer" | awk 'NR % 2 == 1 { k = $0 } NR % 2 == 0 { v[k] = $0 }
      END { print (v["ip"] == "" ? "-" : v["ip"]), (v["port"] == "" ? "-" : v["port"]), (v["config-epoch"] == "" ? "-" : v["config-epoch"]) }')
    case "$2$3" in
      *[!0-9]* | '')
        errors="$errors
  $shost: $(echo "$answer" | head -n 1)"
        continue ;;
    esac
    answered=$((answered + 1))
    echo "configure:   $shost names $1:$2 (config epoch $3)" >&2
    if [ "$3" -gt "$best_epoch" ]; then
      best_epoch=$3
      best_host=$(qualify "$1")
      best_port=$2
      best_from=$shost
      best_sport=${s##*:}
    fi
  done
  if [ "$answered" -eq 0 ]; then
    echo "configure: no Sentinel named the primary of '$master_name'; not starting (a pod that guessed its role could become a second primary). What each said:$errors" >&2
    exit 1
  fi
  if [ "$best_host" = "$self" ] || [ "$best_host" = "${POD_IP:-}" ]; then
    # Becoming the primary needs a majority of the Sentinels behind it (a
    # minority may not have heard of a failover), and no other levee pod
    # Sentinel knows of may still be acting as the primary.
    if [ "$answered" -le $((listed / 2)) ]; then
      echo "configure: only $answered of $listed Sentinels answered and this pod would be the primary; not starting until a majority answers (a minority may have missed a failover). What the others said:$errors" >&2
      exit 1
    fi
    peers=$(redis-cli -h "$(lookup "$best_from")" -p "$best_sport" --raw SENTINEL REPLICAS "$master_name" 2>/dev/null |
      awk 'NR % 2 == 1 { k = $0 } NR % 2 == 0 && k == "name" { print $0 }' | tr -d '\r') || peers=""
    for peer in $peers; do
      phost=$(qualify "${peer%:*}")
      [ "$phost" != "$self" ] && [ "${peer%:*}" != "${POD_IP:-}" ] || continue
      if [ "$(redis-cli -h "$(lookup "$phost")" -p "${peer##*:}" --raw ROLE 2>/dev/null | head -n 1)" = master ]; then
        echo "configure: Sentinel names this pod the primary, but $phost says it is the primary; not starting until Sentinel and the pods agree (the step retries)" >&2
        exit 1
      fi
    done
    reason="$answered of $listed Sentinels answered; the newest configuration (epoch $best_epoch, from $best_from) names this pod the primary"
  else
    primary_host=$best_host
    primary_port=$best_port
    reason="the newest configuration among $answered of $listed Sentinels (epoch $best_epoch, from $best_from) names the primary"
  fi
elif [ "$ordinal" = 0 ]; then
  reason="no Sentinels configured; ordinal 0 is the primary"
else
  primary_host=$first
  primary_port=$port
  reason="no Sentinels configured; replicating from ordinal 0"
fi

tmp="$out.tmp"
grep -v -E '^(replicaof|replica-announce-ip|replica-announce-port|replica-priority):' "$src" > "$tmp" || true
{
  echo ""
  echo "# Written by configure.sh for $pod: $reason."
  if [ -n "$primary_host" ]; then
    echo "replicaof: \"$primary_host:$primary_port\""
  else
    echo "replicaof: \"\""
  fi
  echo "replica-announce-ip: \"$self\""
  echo "replica-announce-port: $port"
  if [ -n "${LEVEE_REPLICA_PRIORITY:-}" ]; then echo "replica-priority: $LEVEE_REPLICA_PRIORITY"; fi
} >> "$tmp"
mv "$tmp" "$out"
# For the preStop hook (prestop.sh): where the Sentinels are.
printf '%s\n%s\n' "$master_name" "${LEVEE_SENTINELS:-}" > "$(dirname "$out")/sentinels"
if [ -n "$primary_host" ]; then echo replica > "$role_out"; else echo primary > "$role_out"; fi
echo "configure: $pod is $(cat "$role_out"): $reason" >&2

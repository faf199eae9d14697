#!/bin/sh
# Optional init step (overlays add it): a pod that will start as the primary
# on an empty volume restores the newest backup first. Replicas never
# restore: they copy the primary, which is newer than any backup.
#
#   no repository yet, or no backup in it -> start empty (a new cluster)
#   the repository cannot be read         -> fail; Kubernetes retries the pod
#                                            (never start empty over a backup
#                                            that exists but is unreachable)
#
# Environment: LEVEE_DATA_DIR, LEVEE_ROLE_OUT (written by configure.sh),
# LEVEE_BACKUP_REPO, LEVEE_BACKUP_KEY_FILE, and the object store's
# credentials (Workload Identity, or AWS_* HMAC keys from a Secret).
set -eu

data_dir=${LEVEE_DATA_DIR:-/var/lib/levee/data}
role=$(cat "${LEVEE_ROLE_OUT:-/run/levee/role}" 2>/dev/null || echo unknown)
repo=${LEVEE_BACKUP_REPO:-}
levee=${LEVEE_BIN:-levee}

if [ -e "$data_dir/db/CURRENT" ]; then
  echo "restore-on-empty: $data_dir holds a database; nothing to do" >&2
  exit 0
fi
if [ "$role" != primary ]; then
  echo "restore-on-empty: this pod starts as a $role and will copy its primary; not restoring" >&2
  exit 0
fi
if [ -z "$repo" ]; then
  echo "restore-on-empty: LEVEE_BACKUP_REPO is empty; starting with an empty database" >&2
  exit 0
fi
key_args=""
if [ -n "${LEVEE_BACKUP_KEY_FILE:-}" ]; then key_args="--key-file $LEVEE_BACKUP_KEY_FILE"; fi

# shellcheck disable=SC2086
if ! listing=$("$levee" backup list --repo "$repo" $key_args --json 2>&1); then
  case "$listing" in
    *"no levee backup repository"*)
      echo "restore-on-empty: no repository at $repo yet; starting with an empty database" >&2
      exit 0 ;;
  esac
  echo "restore-on-empty: cannot read $repo: $listing" >&2
  exit 1
fi
if [ "$listing" = "[]" ]; then
  echo "restore-on-empty: $repo has no backups yet; starting with an empty database" >&2
  exit 0
fi
echo "restore-on-empty: restoring the newest backup of $repo into $data_dir" >&2
# shellcheck disable=SC2086
exec "$levee" backup restore --repo "$repo" $key_args --data-dir "$data_dir" --json

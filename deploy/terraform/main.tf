# levee on GKE: one regional cluster (a second one when second_region is
# set), a dual-region GCS bucket for backups encrypted with a Cloud KMS key,
# and a Google service account with only the bucket roles levee uses,
# bound to levee's Kubernetes ServiceAccount through Workload Identity.

module "primary" {
  source                 = "./modules/gke-cluster"
  project_id             = var.project_id
  name                   = "${var.cluster_name}-${var.region}"
  region                 = var.region
  node_machine_type      = var.node_machine_type
  nodes_per_zone         = var.nodes_per_zone
  master_ipv4_cidr_block = var.master_ipv4_cidr_block
  authorized_networks    = var.authorized_networks
}

module "second" {
  source                 = "./modules/gke-cluster"
  count                  = var.second_region == "" ? 0 : 1
  project_id             = var.project_id
  name                   = "${var.cluster_name}-${var.second_region}"
  region                 = var.second_region
  node_machine_type      = var.node_machine_type
  nodes_per_zone         = var.nodes_per_zone
  master_ipv4_cidr_block = var.second_master_ipv4_cidr_block
  authorized_networks    = var.authorized_networks
}

# --- the backup key (CMEK) ---------------------------------------------------

# A CMEK key must live where the bucket lives: the multi-regions EU, US and
# ASIA are the KMS locations europe, us and asia; dual-regions (EUR4, NAM4)
# have KMS locations of the same name.
locals {
  kms_location = lookup({ EU = "europe", US = "us", ASIA = "asia" }, upper(var.backup_bucket_location), lower(var.backup_bucket_location))
}

resource "google_kms_key_ring" "levee" {
  name     = "${var.cluster_name}-backups"
  location = local.kms_location
}

resource "google_kms_crypto_key" "backups" {
  name            = "levee-backups"
  key_ring        = google_kms_key_ring.levee.id
  rotation_period = "7776000s" # 90 days
  lifecycle {
    prevent_destroy = true
  }
}

data "google_storage_project_service_account" "gcs" {
}

# Cloud Storage's own service agent encrypts and decrypts with the key.
resource "google_kms_crypto_key_iam_member" "gcs_uses_key" {
  crypto_key_id = google_kms_crypto_key.backups.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

# --- the bucket ---------------------------------------------------------------

resource "google_storage_bucket" "backups" {
  name                        = var.backup_bucket_name
  location                    = var.backup_bucket_location
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # No retention policy: levee overwrites and deletes its lock objects and
  # prunes backups younger than any useful retention period, and GCS refuses
  # both under one (it also refuses a retention policy with versioning).
  # Protection comes from versioning instead: an object levee's prune (or
  # anyone) deleted or replaced stays as a noncurrent version for
  # backup_recovery_days, and can be restored (docs/kubernetes.md, "Undo a
  # prune"). Deleting versions needs storage.objects.delete on the bucket,
  # which only levee's account and project owners hold.
  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.backups.id
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.backup_recovery_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_key]
}

# --- levee's identity ---------------------------------------------------------

resource "google_service_account" "levee" {
  account_id   = "levee-backup"
  display_name = "levee backups (Workload Identity for the levee Kubernetes ServiceAccount)"
}

# Read, create, list and delete objects (prune) in this bucket only: no
# bucket administration, nothing project-wide.
resource "google_storage_bucket_iam_member" "levee_objects" {
  bucket = google_storage_bucket.backups.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.levee.email}"
}

# The levee ServiceAccount in var.namespace of either cluster may act as it.
resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = google_service_account.levee.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.namespace}/levee]"
}

# levee reaches gs:// with the pod's Workload Identity token. An HMAC key of
# the same service account is only for writers outside GKE (create_hmac_key);
# levee prefers it when the levee-backup-hmac Secret holds one.
resource "google_storage_hmac_key" "levee" {
  count                 = var.create_hmac_key ? 1 : 0
  service_account_email = google_service_account.levee.email
}

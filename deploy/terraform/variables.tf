variable "project_id" {
  description = "Google Cloud project that holds the clusters, the bucket and the key."
  type        = string
}

variable "region" {
  description = "Region of the first (primary) GKE cluster, e.g. europe-west1."
  type        = string
}

variable "second_region" {
  description = "Region of a second cluster for cross-region replicas (overlays/second-region); empty for none."
  type        = string
  default     = ""
}

variable "cluster_name" {
  description = "Name prefix of the GKE clusters."
  type        = string
  default     = "levee"
}

variable "namespace" {
  description = "Kubernetes namespace levee runs in (its ServiceAccount levee is bound to the Google service account)."
  type        = string
  default     = "levee"
}

variable "backup_bucket_name" {
  description = "Name of the GCS bucket for levee's backups (globally unique)."
  type        = string
}

variable "backup_bucket_location" {
  description = "Dual-region or multi-region location, so backups survive the loss of a region: EU, US, ASIA, EUR4, NAM4..."
  type        = string
  default     = "EU"
}

variable "backup_recovery_days" {
  description = "Days a backup object that was deleted or replaced (a prune, a lock) can still be restored from its noncurrent version."
  type        = number
  default     = 30
}

variable "node_machine_type" {
  description = "Machine type of the levee node pool; levee's requests (1 CPU, 2 GiB) and Sentinel, HAProxy must fit."
  type        = string
  default     = "n2-standard-4"
}

variable "nodes_per_zone" {
  description = "Nodes per zone in the levee node pool (a regional cluster has three zones)."
  type        = number
  default     = 1
}

variable "master_ipv4_cidr_block" {
  description = "The /28 for the first cluster's control plane (private cluster)."
  type        = string
  default     = "172.16.0.0/28"
}

variable "second_master_ipv4_cidr_block" {
  description = "The /28 for the second cluster's control plane."
  type        = string
  default     = "172.16.0.16/28"
}

variable "authorized_networks" {
  description = "CIDR blocks allowed to reach the clusters' control planes (kubectl, CI)."
  type        = list(object({ cidr_block = string, display_name = string }))
  default     = []
}

variable "create_hmac_key" {
  description = "Also make an HMAC key for the backup service account (for the levee-backup-hmac Secret). levee uses Workload Identity without it; a key is a long-lived credential, so leave this off unless something outside GKE must write backups."
  type        = bool
  default     = false
}

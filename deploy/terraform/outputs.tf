output "primary_cluster" {
  description = "Name of the first cluster (gcloud container clusters get-credentials NAME --region REGION)."
  value       = module.primary.name
}

output "second_cluster" {
  description = "Name of the second cluster, or empty."
  value       = var.second_region == "" ? "" : module.second[0].name
}

output "backup_bucket" {
  description = "Put gs://<this>/levee in backup-repo (levee.yaml) and LEVEE_BACKUP_REPO (restore-on-empty)."
  value       = google_storage_bucket.backups.name
}

output "levee_gsa_email" {
  description = "The iam.gke.io/gcp-service-account annotation of the levee ServiceAccount."
  value       = google_service_account.levee.email
}

output "levee_hmac_access_id" {
  description = "aws_access_key_id of the levee-backup-hmac Secret (null unless create_hmac_key)."
  value       = one(google_storage_hmac_key.levee[*].access_id)
}

output "levee_hmac_secret" {
  description = "aws_secret_access_key of the levee-backup-hmac Secret (null unless create_hmac_key)."
  value       = one(google_storage_hmac_key.levee[*].secret)
  sensitive   = true
}

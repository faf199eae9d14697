output "name" {
  description = "The cluster's name."
  value       = google_container_cluster.this.name
}

output "endpoint" {
  description = "The control plane's address."
  value       = google_container_cluster.this.endpoint
}

# A regional GKE cluster for levee: private nodes (no public IPs), Workload
# Identity, Dataplane V2 (NetworkPolicy enforced), the GCE persistent disk
# CSI driver, and a node pool sized for levee with its own least-privileged
# node service account. Private nodes reach the internet (ghcr.io for levee's
# image, Docker Hub for haproxy and redis) only through the region's Cloud NAT
# below: without it, no pod of levee's would ever pull its image.

# Account ids are at most 30 characters: the name's first 19 and a hash of
# the whole name, so clusters whose names share a prefix (levee-asia-northeast1
# and levee-asia-northeast2) get different accounts.
resource "google_service_account" "nodes" {
  account_id   = "${trimsuffix(substr(var.name, 0, 19), "-")}-${substr(sha1(var.name), 0, 6)}-n"
  display_name = "GKE nodes of ${var.name} (logging, monitoring, image pulls only)"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

resource "google_container_cluster" "this" {
  name     = var.name
  location = var.region

  # Node pools are managed below; the default one is removed at creation.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = true

  release_channel {
    channel = "REGULAR"
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  datapath_provider = "ADVANCED_DATAPATH"

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  ip_allocation_policy {}

  addons_config {
    gce_persistent_disk_csi_driver_config {
      enabled = true
    }
  }

  vertical_pod_autoscaling {
    enabled = true
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]
    managed_prometheus {
      enabled = true
    }
  }
}

resource "google_container_node_pool" "levee" {
  name       = "levee"
  cluster    = google_container_cluster.this.id
  node_count = var.nodes_per_zone

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type    = var.node_machine_type
    disk_type       = "pd-balanced"
    disk_size_gb    = 100
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    labels = {
      "levee.dev/pool" = "levee"
    }
  }
}

# Outbound traffic for the private nodes: image pulls from public registries.
# Nothing can reach the nodes through it.
resource "google_compute_router" "nat" {
  name    = "${var.name}-nat"
  region  = var.region
  network = "default"
}

resource "google_compute_router_nat" "nat" {
  name                               = "${var.name}-nat"
  router                             = google_compute_router.nat.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"
  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

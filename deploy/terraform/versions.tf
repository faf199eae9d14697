terraform {
  required_version = ">= 1.5"
  # State lives in a GCS bucket of its own (not the backups bucket):
  # terraform init -backend-config="bucket=<state bucket>".
  backend "gcs" {
    prefix = "levee"
  }
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 5.30"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

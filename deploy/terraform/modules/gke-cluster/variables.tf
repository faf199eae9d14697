variable "project_id" {
  description = "Project of the cluster."
  type        = string
}

variable "name" {
  description = "Cluster name."
  type        = string
}

variable "region" {
  description = "Region: the cluster is regional, its nodes spread over the region's zones."
  type        = string
}

variable "node_machine_type" {
  description = "Machine type of the levee node pool."
  type        = string
}

variable "nodes_per_zone" {
  description = "Nodes per zone."
  type        = number
}

variable "master_ipv4_cidr_block" {
  description = "The /28 of the private control plane."
  type        = string
}

variable "authorized_networks" {
  description = "CIDR blocks that may reach the control plane."
  type        = list(object({ cidr_block = string, display_name = string }))
}

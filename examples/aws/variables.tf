variable "kimage_out" {
  description = "kimage's output directory (kimage build --all --out DIR): manifest.json, nodes/, layers/."
  type        = string
  default     = "out"
}

variable "region" {
  description = "AWS region of the instances and the artifact bucket."
  type        = string
}

variable "bucket_name" {
  description = "Artifact bucket the layers are uploaded to. The profile's layers.baseURL must be https://BUCKET.s3.REGION.amazonaws.com (the layers_base_url output) before kimage build."
  type        = string

  validation {
    # Virtual-hosted-style HTTPS URLs break on dots in the bucket name (the certificate is *.s3...).
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 lowercase letters, digits and hyphens (no dots: nodes fetch over HTTPS)."
  }
}

variable "create_bucket" {
  description = "Create the bucket (true) or use an existing one (false)."
  type        = bool
  default     = true
}

variable "subnet_id" {
  description = "Subnet every node is launched in. It must contain the node addresses of the profile (they become the instances' private IPs)."
  type        = string
}

variable "route_table_ids" {
  description = "Route tables to attach a new S3 gateway endpoint to. Leave empty if the VPC already routes S3 through a gateway endpoint."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the nodes. They must allow the cluster's own traffic (apiserver, etcd, kubelet, VXLAN for flannel) between the nodes."
  type        = list(string)
}

variable "ami_id" {
  description = "AMI every node boots (with cloud-init). Empty: the latest official Debian 12 AMI for the architecture."
  type        = string
  default     = ""
}

variable "arch" {
  description = "The profile's binaries.arch: amd64 or arm64 (chooses the default AMI)."
  type        = string
  default     = "amd64"

  validation {
    condition     = contains(["amd64", "arm64"], var.arch)
    error_message = "arch must be amd64 or arm64, the same as binaries.arch in the profile."
  }
}

variable "instance_types" {
  description = "Instance type per role."
  type        = map(string)
  default = {
    "control-plane" = "t3.medium"
    "worker"        = "t3.large"
    "etcd"          = "t3.small"
    "load-balancer" = "t3.micro"
  }
}

variable "root_volume_gb" {
  description = "Root volume size in GiB."
  type        = number
  default     = 30
}

variable "gzip_user_data" {
  description = "Send the user-data gzip-compressed (cloud-init decompresses it). Needed when a node's user-data is over EC2's 16 KiB limit uncompressed."
  type        = bool
  default     = false
}

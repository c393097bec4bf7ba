variable "kimage_out" {
  description = "kimage's output directory (kimage build --all --out DIR): manifest.json, nodes/, layers/."
  type        = string
  default     = "out"
}

variable "layers_from" {
  description = "The profile's layers.from. seed: attach kimage's seed.img (NoCloud documents plus layers). url or image: a cloud-init disk with the three NoCloud documents only; nodes fetch layers from layers.baseURL or find them in the image."
  type        = string
  default     = "seed"

  validation {
    condition     = contains(["seed", "url", "image"], var.layers_from)
    error_message = "layers_from must be seed, url or image, the same as layers.from in the profile."
  }
}

variable "libvirt_uri" {
  description = "libvirt connection URI."
  type        = string
  default     = "qemu:///system"
}

variable "pool" {
  description = "Storage pool for the base image, root disks and cloud-init/seed volumes."
  type        = string
  default     = "default"
}

variable "base_image" {
  description = "Cloud image every node boots (qcow2 with cloud-init), as a path or URL, e.g. a Debian 12 genericcloud image."
  type        = string
}

variable "disk_bytes" {
  description = "Size of each node's root disk in bytes (a copy-on-write layer over the base image)."
  type        = number
  default     = 21474836480
}

variable "network_name" {
  description = "libvirt network the nodes attach to. The profile's node addresses, network.prefixLength and network.gateway must belong to it."
  type        = string
  default     = "default"
}

variable "macs" {
  description = "Optional MAC address per node name. Give the same value as the node's `mac` in the profile so network-config matches the NIC by MAC; otherwise it matches network.interface by name."
  type        = map(string)
  default     = {}
}

variable "memory_mib" {
  description = "Memory per role in MiB."
  type        = map(number)
  default = {
    "control-plane" = 4096
    "worker"        = 4096
    "etcd"          = 2048
    "load-balancer" = 1024
  }
}

variable "vcpus" {
  description = "Virtual CPUs per role."
  type        = map(number)
  default = {
    "control-plane" = 2
    "worker"        = 2
    "etcd"          = 2
    "load-balancer" = 1
  }
}

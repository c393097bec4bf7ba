terraform {
  # Resource preconditions (digest checks) need Terraform 1.2; OpenTofu works as well.
  required_version = ">= 1.2.0"

  required_providers {
    libvirt = {
      # The 0.8 series: libvirt_volume / libvirt_cloudinit_disk / libvirt_domain with disk and
      # network_interface blocks. The 0.9 rewrite changed these schemas; see README.md.
      source  = "dmacvicar/libvirt"
      version = "~> 0.8.3"
    }
  }
}

provider "libvirt" {
  uri = var.libvirt_uri
}

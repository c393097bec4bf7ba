# One libvirt VM per node of a kimage build, driven by out/manifest.json alone: every file this
# configuration reads is named by the manifest, and its digest is checked against the manifest first.

locals {
  out      = abspath(var.kimage_out)
  manifest = jsondecode(file("${local.out}/manifest.json"))
  cluster  = local.manifest.cluster
  use_seed = var.layers_from == "seed"

  nodes = {
    for name, node in local.manifest.nodes : name => {
      role                  = node.role
      address               = node.address
      user_data_file        = "${local.out}/${node.user_data.path}"
      user_data_sha256      = node.user_data.sha256
      meta_data_file        = "${local.out}/${node.meta_data.path}"
      meta_data_sha256      = node.meta_data.sha256
      network_config_file   = "${local.out}/${node.network_config.path}"
      network_config_sha256 = node.network_config.sha256
      seed_file             = "${local.out}/${node.seed.path}"
      seed_sha256           = node.seed.sha256
    }
  }
}

resource "libvirt_volume" "base" {
  name   = "${local.cluster}-base.qcow2"
  pool   = var.pool
  source = var.base_image
  format = "qcow2"
}

# The root disk keeps its data when the node's artifacts change (etcd and kubelet state live here).
resource "libvirt_volume" "root" {
  for_each       = local.nodes
  name           = "${local.cluster}-${each.key}.qcow2"
  pool           = var.pool
  base_volume_id = libvirt_volume.base.id
  size           = var.disk_bytes
  format         = "qcow2"
}

# layers.from: seed. kimage's own NoCloud seed (label cidata): user-data, meta-data, network-config
# and the node's layers, which kimage-apply reads from this disk at first boot. The digest is part of
# the name, so a rebuilt seed is a new volume (and the domain is recreated on it).
resource "libvirt_volume" "seed" {
  for_each = local.use_seed ? local.nodes : {}
  name     = "${local.cluster}-${each.key}-seed-${substr(each.value.seed_sha256, 0, 12)}.img"
  pool     = var.pool
  source   = each.value.seed_file
  format   = "raw"

  lifecycle {
    precondition {
      condition     = filesha256(each.value.seed_file) == each.value.seed_sha256
      error_message = "${each.value.seed_file} does not match the sha256 in manifest.json; rebuild with kimage build."
    }
  }
}

# layers.from: url or image. A cidata ISO with the three NoCloud documents; the node downloads its
# layers from layers.baseURL (or finds them in the image) and checks each digest before using it.
resource "libvirt_cloudinit_disk" "init" {
  for_each       = local.use_seed ? {} : local.nodes
  name           = "${local.cluster}-${each.key}-cidata-${substr(each.value.user_data_sha256, 0, 12)}.iso"
  pool           = var.pool
  user_data      = file(each.value.user_data_file)
  meta_data      = file(each.value.meta_data_file)
  network_config = file(each.value.network_config_file)

  lifecycle {
    precondition {
      condition = alltrue([
        filesha256(each.value.user_data_file) == each.value.user_data_sha256,
        filesha256(each.value.meta_data_file) == each.value.meta_data_sha256,
        filesha256(each.value.network_config_file) == each.value.network_config_sha256,
      ])
      error_message = "The NoCloud documents of ${each.key} do not match the sha256 in manifest.json; rebuild with kimage build."
    }
  }
}

resource "libvirt_domain" "node" {
  for_each  = local.nodes
  name      = "${local.cluster}-${each.key}"
  memory    = lookup(var.memory_mib, each.value.role, 2048)
  vcpu      = lookup(var.vcpus, each.value.role, 2)
  autostart = true
  cloudinit = local.use_seed ? null : libvirt_cloudinit_disk.init[each.key].id

  cpu {
    mode = "host-passthrough"
  }

  disk {
    volume_id = libvirt_volume.root[each.key].id
  }

  dynamic "disk" {
    for_each = local.use_seed ? [libvirt_volume.seed[each.key].id] : []
    content {
      volume_id = disk.value
    }
  }

  network_interface {
    network_name = var.network_name
    mac          = lookup(var.macs, each.key, null)
  }

  # No SSH: the serial console is where kimage-apply reports (lines starting "KIMAGE <node>:").
  console {
    type        = "pty"
    target_port = "0"
    target_type = "serial"
  }
}

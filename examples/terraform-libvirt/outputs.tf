output "cluster" {
  description = "Cluster name from manifest.json."
  value       = local.cluster
}

output "nodes" {
  description = "Every node: role, static address (from the profile) and libvirt domain."
  value = {
    for name, n in local.nodes : name => {
      role    = n.role
      address = n.address
      domain  = libvirt_domain.node[name].name
    }
  }
}

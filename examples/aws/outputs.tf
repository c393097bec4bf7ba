output "layers_base_url" {
  description = "The profile's layers.baseURL for this bucket (set it, with layers.from: url, before kimage build)."
  value       = local.layers_base_url
}

output "nodes" {
  description = "Every node: role, private address (from the profile), instance id and user-data size sent."
  value = {
    for name, n in local.nodes : name => {
      role            = n.role
      address         = n.address
      instance_id     = aws_instance.node[name].id
      user_data_bytes = local.user_data_sent_bytes[name]
    }
  }
}

output "layers_uploaded" {
  description = "Number of distinct layers in the bucket."
  value       = length(aws_s3_object.layer)
}

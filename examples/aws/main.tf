# One EC2 instance per node of a kimage build, driven by out/manifest.json alone. Nodes get their
# user-data (secrets included) from EC2 and their layers from the artifact bucket over HTTPS, each
# layer checked against the sha256 the user-data carries before it is used.

locals {
  out      = abspath(var.kimage_out)
  manifest = jsondecode(file("${local.out}/manifest.json"))
  cluster  = local.manifest.cluster

  # EC2 accepts at most 16 KiB of user data, counted before base64 encoding.
  user_data_limit = 16384

  nodes = {
    for name, node in local.manifest.nodes : name => {
      role             = node.role
      address          = node.address
      user_data_file   = "${local.out}/${node.user_data.path}"
      user_data_sha256 = node.user_data.sha256
      user_data_bytes  = node.user_data.bytes
    }
  }

  # Layers are content-addressed and shared between nodes: upload each once, under the same key as
  # its path in out/ (layers/<sha256>.tar.gz), which is where nodes look below layers.baseURL.
  layers = merge([
    for name, node in local.manifest.nodes : {
      for layer in node.layers : layer.sha256 => {
        key   = layer.path
        file  = "${local.out}/${layer.path}"
        bytes = layer.bytes
      }
    }
  ]...)

  user_data_b64 = {
    for name, n in local.nodes : name => var.gzip_user_data ? base64gzip(file(n.user_data_file)) : filebase64(n.user_data_file)
  }
  # What EC2 counts: the decoded size (4 base64 characters carry 3 bytes, less the "=" padding).
  user_data_sent_bytes = {
    for name, b64 in local.user_data_b64 : name => floor(length(b64) / 4) * 3 - length(regexall("=", substr(b64, -2, 2)))
  }

  bucket          = var.create_bucket ? aws_s3_bucket.artifacts[0].id : var.bucket_name
  layers_base_url = "https://${var.bucket_name}.s3.${var.region}.amazonaws.com"
  ami             = var.ami_id != "" ? var.ami_id : data.aws_ami.debian[0].id
}

data "aws_subnet" "nodes" {
  id = var.subnet_id
}

data "aws_ami" "debian" {
  count       = var.ami_id == "" ? 1 : 0
  most_recent = true
  owners      = ["136693071363"] # Debian's official AMIs

  filter {
    name   = "name"
    values = ["debian-12-${var.arch}-*"]
  }
}

resource "aws_s3_bucket" "artifacts" {
  count  = var.create_bucket ? 1 : 0
  bucket = var.bucket_name
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  count                   = var.create_bucket ? 1 : 0
  bucket                  = aws_s3_bucket.artifacts[0].id
  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = true
  restrict_public_buckets = true
}

# Nodes download without credentials, but only from inside the VPC (through its S3 gateway
# endpoint). Layers hold no secrets (those travel in user-data) and nodes verify every digest.
resource "aws_s3_bucket_policy" "layers_from_vpc" {
  bucket = local.bucket
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "KimageLayersFromClusterVpc"
      Effect    = "Allow"
      Principal = "*"
      Action    = "s3:GetObject"
      Resource  = "arn:aws:s3:::${local.bucket}/layers/*"
      Condition = { StringEquals = { "aws:SourceVpc" = data.aws_subnet.nodes.vpc_id } }
    }]
  })
  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

resource "aws_vpc_endpoint" "s3" {
  count             = length(var.route_table_ids) > 0 ? 1 : 0
  vpc_id            = data.aws_subnet.nodes.vpc_id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.route_table_ids
}

resource "aws_s3_object" "layer" {
  for_each           = local.layers
  bucket             = local.bucket
  key                = each.value.key
  source             = each.value.file
  content_type       = "application/gzip"
  checksum_algorithm = "SHA256"

  lifecycle {
    precondition {
      condition     = filesha256(each.value.file) == each.key
      error_message = "${each.value.file} does not match its sha256 in manifest.json; rebuild with kimage build."
    }
  }
}

resource "aws_instance" "node" {
  for_each               = local.nodes
  ami                    = local.ami
  instance_type          = lookup(var.instance_types, each.value.role, "t3.medium")
  subnet_id              = var.subnet_id
  private_ip             = each.value.address
  vpc_security_group_ids = var.security_group_ids

  user_data_base64 = local.user_data_b64[each.key]
  # Nodes are immutable: new artifacts mean a new instance (EC2 keeps the instance-id across a
  # user-data change, so cloud-init would not run again on the old one).
  user_data_replace_on_change = true

  # The user-data holds the node's private keys: IMDSv2 only, unreachable from pods (hop limit 1).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_size = var.root_volume_gb
    volume_type = "gp3"
    encrypted   = true
  }

  tags = {
    Name             = "${local.cluster}-${each.key}"
    "kimage/cluster" = local.cluster
    "kimage/role"    = each.value.role
  }

  # Layers must be downloadable before the first boot asks for them.
  depends_on = [aws_s3_object.layer, aws_s3_bucket_policy.layers_from_vpc, aws_vpc_endpoint.s3]

  lifecycle {
    precondition {
      condition     = local.user_data_sent_bytes[each.key] <= local.user_data_limit
      error_message = "The user-data of ${each.key} is ${local.user_data_sent_bytes[each.key]} bytes; EC2 accepts at most 16384 (16 KiB). Set gzip_user_data = true, or reduce what the node carries."
    }
    precondition {
      condition     = filesha256(each.value.user_data_file) == each.value.user_data_sha256
      error_message = "${each.value.user_data_file} does not match its sha256 in manifest.json; rebuild with kimage build."
    }
  }
}

# Warnings (terraform plan goes on): uncompressed user-data over the limit, and user-data that does
# not name this bucket (layers.from must be url and layers.baseURL the layers_base_url output).
check "user_data_size" {
  assert {
    condition     = var.gzip_user_data || alltrue([for name, n in local.nodes : n.user_data_bytes <= local.user_data_limit])
    error_message = "User-data over 16 KiB: ${join(", ", [for name, n in local.nodes : "${name} (${n.user_data_bytes} bytes)" if n.user_data_bytes > local.user_data_limit])}. Set gzip_user_data = true."
  }
}

check "layers_base_url" {
  assert {
    condition     = alltrue([for name, n in local.nodes : strcontains(file(n.user_data_file), local.layers_base_url)])
    error_message = "Some nodes' user-data does not mention ${local.layers_base_url}: set layers.from: url and layers.baseURL: ${local.layers_base_url} in the profile, then kimage build again."
  }
}

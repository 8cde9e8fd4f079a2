# Terraform configuration driven by tests/tests/terraform.rs against `berth up`: a VPC, a
# subnet, security groups with ingress and egress rules (inline and as
# aws_vpc_security_group_ingress_rule), and an ECS service in awsvpc mode that uses them.
# Provider plugins come from a local filesystem mirror; nothing is fetched from the network.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
}

variable "endpoint" {
  description = "Berth endpoint URL, e.g. http://127.0.0.1:4566"
  type        = string
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "access_key" {
  type      = string
  sensitive = true
}

variable "secret_key" {
  type      = string
  sensitive = true
}

variable "name" {
  description = "Prefix of every resource name"
  type        = string
  default     = "berth-tf"
}

provider "aws" {
  region     = var.region
  access_key = var.access_key
  secret_key = var.secret_key

  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  # The account id comes from STS's GetCallerIdentity (rules naming groups of the same
  # account read back plain group ids only when the provider knows it).
  endpoints {
    ec2 = var.endpoint
    ecs = var.endpoint
    iam = var.endpoint
    sts = var.endpoint
  }
}

resource "aws_vpc" "main" {
  cidr_block           = "10.20.0.0/16"
  enable_dns_hostnames = true

  tags = {
    Name    = "${var.name}-vpc"
    Project = "berth"
  }
}

resource "aws_subnet" "a" {
  vpc_id            = aws_vpc.main.id
  cidr_block        = "10.20.1.0/24"
  availability_zone = "${var.region}a"

  tags = {
    Name = "${var.name}-a"
  }
}

resource "aws_security_group" "web" {
  name        = "${var.name}-web"
  description = "web tasks"
  vpc_id      = aws_vpc.main.id

  ingress {
    description = "http from the VPC"
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = [aws_vpc.main.cidr_block]
  }

  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = {
    Name = "${var.name}-web"
  }
}

resource "aws_security_group" "client" {
  name        = "${var.name}-client"
  description = "clients of the web tasks"
  vpc_id      = aws_vpc.main.id
}

# A rule of its own on a group without inline rules (Terraform's advice: never both kinds
# on one group).
resource "aws_vpc_security_group_ingress_rule" "client_from_web" {
  security_group_id            = aws_security_group.client.id
  referenced_security_group_id = aws_security_group.web.id
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
}

resource "aws_ecs_cluster" "main" {
  name = "${var.name}-cluster"
}

resource "aws_ecs_task_definition" "web" {
  family                   = "${var.name}-web"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = "256"
  memory                   = "512"

  container_definitions = jsonencode([
    {
      name      = "web"
      image     = "busybox"
      essential = true
      command   = ["httpd", "-f", "-p", "80"]
      portMappings = [
        { containerPort = 80, protocol = "tcp" }
      ]
    }
  ])
}

resource "aws_ecs_service" "web" {
  name            = "${var.name}-web"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.web.arn
  desired_count   = 0
  launch_type     = "FARGATE"

  network_configuration {
    subnets          = [aws_subnet.a.id]
    security_groups  = [aws_security_group.web.id]
    assign_public_ip = false
  }
}

output "vpc_id" {
  value = aws_vpc.main.id
}

output "subnet_id" {
  value = aws_subnet.a.id
}

output "web_group_id" {
  value = aws_security_group.web.id
}

output "service_name" {
  value = aws_ecs_service.web.name
}

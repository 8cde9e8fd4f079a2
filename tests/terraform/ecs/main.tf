# Terraform configuration driven by tests/tests/terraform.rs against `berth up`.
# Provider plugins come from a local filesystem mirror (see the CLI config written by the test);
# nothing is fetched from the network.

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
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {
    ecs  = var.endpoint
    logs = var.endpoint
  }
}

resource "aws_ecs_cluster" "main" {
  name = "${var.name}-cluster"

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = {
    Project = "berth"
    Suite   = "terraform"
  }
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
      image     = "public.ecr.aws/docker/library/busybox:latest"
      essential = true
      command   = ["httpd", "-f", "-p", "8080"]
      portMappings = [
        {
          containerPort = 8080
          hostPort      = 8080
          protocol      = "tcp"
        }
      ]
      environment = [
        { name = "GREETING", value = "hello" },
        { name = "MODE", value = "test" }
      ]
    }
  ])

  tags = {
    Project = "berth"
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    base              = 1
    weight            = 100
  }
}

resource "aws_cloudwatch_log_group" "web" {
  name              = "/ecs/${var.name}-web"
  retention_in_days = 14

  tags = {
    Project = "berth"
    Suite   = "terraform"
  }
}

output "cluster_arn" {
  value = aws_ecs_cluster.main.arn
}

output "task_definition_arn" {
  value = aws_ecs_task_definition.web.arn
}

output "log_group_arn" {
  value = aws_cloudwatch_log_group.web.arn
}

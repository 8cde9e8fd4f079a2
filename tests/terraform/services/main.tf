# IAM and services for ECS, driven by tests/tests/terraform.rs against `berth server` with one
# `berth agent`: a task role and an execution role, managed and inline policies, AWS managed
# policy attachments, a user in a group, a log group, a task definition that names both roles
# and logs with awslogs, and two services using it: a replica service with a deployment
# circuit breaker, placement strategies and a constraint, and a daemon service. Changing
# `message` registers a new revision that both services roll out.

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
  type = string
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
  type    = string
  default = "berth-tf"
}

variable "cluster" {
  type        = string
  description = "The cluster the test's agent joined (created by the test)."
}

variable "message" {
  type    = string
  default = "v1"
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
    iam  = var.endpoint
    logs = var.endpoint
    sts  = var.endpoint
  }
}

data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  path               = "/ecs/"
  description        = "What the app's code may do"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags = {
    Project = "berth"
  }
}

resource "aws_iam_role" "execution" {
  name                 = "${var.name}-execution"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_trust.json
  max_session_duration = 7200
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_policy" "read_clusters" {
  name        = "${var.name}-read-clusters"
  description = "List and describe ECS clusters"
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["ecs:ListClusters", "ecs:DescribeClusters"]
      Resource = "*"
    }]
  })
  tags = {
    Project = "berth"
  }
}

resource "aws_iam_role_policy_attachment" "task_read" {
  role       = aws_iam_role.task.name
  policy_arn = aws_iam_policy.read_clusters.arn
}

resource "aws_iam_role_policy" "task_logs" {
  name = "logs"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = "arn:aws:logs:*:*:log-group:/ecs/${var.name}:*"
    }]
  })
}

resource "aws_iam_group" "operators" {
  name = "${var.name}-operators"
}

resource "aws_iam_group_policy_attachment" "operators" {
  group      = aws_iam_group.operators.name
  policy_arn = aws_iam_policy.read_clusters.arn
}

resource "aws_iam_user" "operator" {
  name = "${var.name}-operator"
  tags = {
    Team = "platform"
  }
}

resource "aws_iam_user_group_membership" "operator" {
  user   = aws_iam_user.operator.name
  groups = [aws_iam_group.operators.name]
}

resource "aws_cloudwatch_log_group" "app" {
  name              = "/ecs/${var.name}"
  retention_in_days = 7
  tags = {
    Project = "berth"
  }
}

data "aws_ecs_cluster" "main" {
  cluster_name = var.cluster
}

resource "aws_ecs_task_definition" "app" {
  family                   = "${var.name}-app"
  requires_compatibilities = ["EC2"]
  network_mode             = "host"
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn

  container_definitions = jsonencode([
    {
      name              = "app"
      image             = "busybox"
      essential         = true
      memoryReservation = 32
      # sleep as PID 1 ignores SIGTERM: don't wait ECS's default 30 s before SIGKILL.
      stopTimeout = 2
      command           = ["sh", "-c", "echo \"hello from ${var.message}\"; exec sleep 3600"]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.app.name
          "awslogs-region"        = var.region
          "awslogs-stream-prefix" = "app"
        }
      }
    }
  ])
}

resource "aws_ecs_service" "web" {
  name                               = "${var.name}-web"
  cluster                            = data.aws_ecs_cluster.main.arn
  task_definition                    = aws_ecs_task_definition.app.arn
  desired_count                      = 1
  launch_type                        = "EC2"
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  ordered_placement_strategy {
    type  = "spread"
    field = "attribute:ecs.availability-zone"
  }

  ordered_placement_strategy {
    type  = "binpack"
    field = "memory"
  }

  placement_constraints {
    type = "distinctInstance"
  }

  tags = {
    Project = "berth"
  }

  depends_on = [aws_iam_role_policy_attachment.execution]
}

resource "aws_ecs_service" "agent" {
  name                = "${var.name}-daemon"
  cluster             = data.aws_ecs_cluster.main.arn
  task_definition     = aws_ecs_task_definition.app.arn
  launch_type         = "EC2"
  scheduling_strategy = "DAEMON"

  placement_constraints {
    type       = "memberOf"
    expression = "attribute:ecs.os-type == linux"
  }

  depends_on = [aws_iam_role_policy_attachment.execution]
}

output "task_role_arn" {
  value = aws_iam_role.task.arn
}

output "policy_arn" {
  value = aws_iam_policy.read_clusters.arn
}

output "task_definition_arn" {
  value = aws_ecs_task_definition.app.arn
}

output "web_service_arn" {
  value = aws_ecs_service.web.id
}

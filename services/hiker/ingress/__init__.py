"""Ingress: verifies Meta's webhooks and hands every update to RabbitMQ before answering 200."""

"""Hiker: a WhatsApp Cloud API bot platform built as three services around RabbitMQ."""

__version__ = "0.1.0"

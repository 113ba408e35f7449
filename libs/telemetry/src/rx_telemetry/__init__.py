"""Metrics, logs and traces shared by every process of every service."""

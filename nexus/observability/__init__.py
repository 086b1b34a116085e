"""Logs, metrics and request history."""

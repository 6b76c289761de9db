"""Fixtures of the prometheus plugin's tests (defined in prometheus_peer.py)."""

from prometheus_peer import prom_world, prometheus_binary, secured_prometheus

__all__ = ["prom_world", "prometheus_binary", "secured_prometheus"]

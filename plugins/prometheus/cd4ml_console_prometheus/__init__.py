"""Prometheus as the console's ``metrics`` backend: PromQL instant and range queries per model
and stage, from query templates in the config (docs/plugins/prometheus.md)."""

from __future__ import annotations

import re
from string import Template
from typing import Any, Literal

from pydantic import Field, field_validator

from console.plugins import API_VERSION, BackendContext, BackendPlugin
from console.plugins.credentials import CredentialOptions
from console.plugins.options import ServingMetricNames

METRICS = ("latency_p95_ms", "error_rate", "traffic_rps", "prediction_mean")
"""The serving metrics of the MetricsSource port; each has a query template."""
TEMPLATE_NAMES = (*METRICS, "version")
PLACEHOLDERS = frozenset({"selector", "window", "model", "stage"})
_DURATION = re.compile(r"(\d+(ms|s|m|h|d|w|y))+")


def _clean_matchers(value: str) -> str:
    if any(c in value for c in "{}$"):
        raise ValueError('write matchers without braces, e.g. job="serving",env="prod"')
    return value.strip().strip(",")


class PrometheusConfig(CredentialOptions, ServingMetricNames):
    """``[backends.metrics]`` with ``type = "prometheus"``."""

    url: str = Field(description="base URL of Prometheus, e.g. http://prometheus:9090")
    auth: Literal["none", "bearer", "basic"] = Field(
        default="none", description="credential to send (Prometheus behind a proxy)"
    )
    timeout_seconds: float | None = Field(default=None, gt=0)
    matchers: str = Field(
        default="", description='extra label matchers for every query, e.g. job="serving"'
    )
    stage_matchers: dict[str, str] = Field(
        default_factory=dict,
        description="matchers picking a stage's series instead of stage_label, e.g. "
        "{ production = 'track=\"prod\"', staging = 'track=\"shadow\"' }",
    )
    window: str = Field(default="5m", description="range of rate() in the default queries")
    lookback_seconds: float = Field(default=3600.0, gt=0, le=90 * 86400)
    min_step_seconds: float = Field(default=1.0, gt=0)
    max_concurrency: int = Field(default=8, ge=1, le=64)
    queries: dict[str, str] = Field(
        default_factory=dict,
        description="PromQL templates overriding the defaults; $selector, $window, $model, $stage",
    )

    @field_validator("window")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.fullmatch(value):
            raise ValueError(f"{value!r} is not a Prometheus duration like 30s, 5m or 1h30m")
        return value

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: str) -> str:
        return _clean_matchers(value)

    @field_validator("stage_matchers")
    @classmethod
    def _stage_matchers(cls, value: dict[str, str]) -> dict[str, str]:
        out = {stage: _clean_matchers(text) for stage, text in value.items()}
        empty = sorted(stage for stage, text in out.items() if not text)
        if empty:
            raise ValueError(f"stage_matchers of {', '.join(empty)} is empty; drop it or add one")
        return out

    @field_validator("queries")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name not in TEMPLATE_NAMES:
                raise ValueError(f"unknown query {name!r}; known: {', '.join(TEMPLATE_NAMES)}")
            template = Template(text)
            unknown = set(template.get_identifiers()) - PLACEHOLDERS
            if not template.is_valid() or unknown:
                raise ValueError(
                    f"queries.{name}: unknown placeholder(s) {sorted(unknown) or '($ misuse)'}; "
                    f"use {', '.join('$' + p for p in sorted(PLACEHOLDERS))} (write $$ for $)"
                )
        return value


def build(config: PrometheusConfig, ctx: BackendContext) -> Any:
    """Factory used by the console: a PrometheusMetrics bound to ``config``."""
    from cd4ml_console_prometheus.metrics import PrometheusMetrics

    return PrometheusMetrics(config, ctx)


PLUGIN = BackendPlugin(
    name="prometheus",
    kinds=frozenset({"metrics"}),
    api_version=API_VERSION,
    config_model=PrometheusConfig,
    factory=build,
    description="live serving metrics from Prometheus (PromQL)",
)

__all__ = ["METRICS", "PLUGIN", "PrometheusConfig", "build"]

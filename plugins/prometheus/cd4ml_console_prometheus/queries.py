"""PromQL for each serving metric: the default templates, the user's overrides, and the
label selector of one (model, stage)."""

from __future__ import annotations

import json
from string import Template

from cd4ml_console_prometheus import PrometheusConfig


def label_value(value: str) -> str:
    """``value`` as a PromQL double-quoted string (quotes, backslashes, controls escaped)."""
    return json.dumps(value, ensure_ascii=False)


def default_templates(c: PrometheusConfig) -> dict[str, str]:
    """The default query of each metric, written for the demo model server's metric names."""
    sel, win = "{${selector}}", "[${window}]"
    errors = "{${selector}," + f"{c.outcome_label}={label_value(c.error_value)}" + "}"
    req, pred = c.requests_metric, c.prediction_metric
    return {
        "latency_p95_ms": (
            f"1000 * histogram_quantile(0.95, sum by (le) (rate({c.latency_metric}_bucket{sel}{win})))"
        ),
        "error_rate": (
            f"(sum(rate({req}{errors}{win})) or vector(0)) / sum(rate({req}{sel}{win}))"
        ),
        "traffic_rps": f"sum(rate({req}{sel}{win}))",
        "prediction_mean": (f"sum(rate({pred}_sum{sel}{win})) / sum(rate({pred}_count{sel}{win}))"),
        "version": f"sum by ({c.version_label}) (rate({req}{sel}{win}))",
    }


class QueryBook:
    """Renders the query of a metric for one (model, stage)."""

    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        merged = {**default_templates(config), **config.queries}
        self.templates = {name: Template(text) for name, text in merged.items()}

    def selector(self, model: str, stage: str) -> str:
        """Label matchers picking the series of ``model`` in ``stage`` (plus config matchers)."""
        c = self.config
        parts = [f"{c.model_label}={label_value(model)}", f"{c.stage_label}={label_value(stage)}"]
        if c.matchers:
            parts.append(c.matchers)
        return ",".join(parts)

    def render(self, name: str, model: str, stage: str) -> str:
        """The PromQL of ``name`` (a metric or ``version``) for ``model`` in ``stage``."""
        return self.templates[name].substitute(
            selector=self.selector(model, stage),
            window=self.config.window,
            model=label_value(model),
            stage=label_value(stage),
        )

    def is_default(self, name: str) -> bool:
        return name not in self.config.queries

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

    def selector(self, model: str, stage: str, version: str | None = None) -> str:
        """Label matchers picking the series of ``model`` in ``stage`` (the stage's own
        ``stage_matchers`` when it has some, else the stage label; plus config matchers), of
        ``version`` only when given."""
        c = self.config
        parts = [f"{c.model_label}={label_value(model)}"]
        own = c.stage_matchers.get(stage)
        parts.append(own if own else f"{c.stage_label}={label_value(stage)}")
        if version:
            parts.append(f"{c.version_label}={label_value(version)}")
        if c.matchers:
            parts.append(c.matchers)
        return ",".join(parts)

    def render(self, name: str, model: str, stage: str, version: str | None = None) -> str:
        """The PromQL of ``name`` (a metric or ``version``) for ``model`` in ``stage``."""
        return self.templates[name].substitute(
            selector=self.selector(model, stage, version),
            window=self.config.window,
            model=label_value(model),
            stage=label_value(stage),
        )

    def window_queries(
        self, model: str, stage: str, version: str | None, seconds: float
    ) -> dict[str, str]:
        """PromQL for the counts over the last ``seconds``: requests, errors, p95, the score
        buckets, the shadow decisions and the busiest version (``increase`` over the range)."""
        c = self.config
        sel = self.selector(model, stage, version)
        rng = f"[{max(1, round(seconds))}s]"
        errors = f"{sel},{c.outcome_label}={label_value(c.error_value)}"
        req = c.requests_metric

        def inc(metric: str, matchers: str = sel) -> str:
            return f"increase({metric}{{{matchers}}}{rng})"

        return {
            "requests": f"sum({inc(req)})",
            "errors": f"sum({inc(req, errors)})",
            "latency_p95_ms": (
                f"1000 * histogram_quantile(0.95, sum by (le) ({inc(c.latency_metric + '_bucket')}))"
            ),
            "scores": f"sum by (le) ({inc(c.prediction_metric + '_bucket')})",
            "shadow": (
                f"sum by ({c.agreement_label}, {c.baseline_label}) ({inc(c.shadow_metric)})"
            ),
            "version": f"sum by ({c.version_label}) ({inc(req)})",
        }

    def is_default(self, name: str) -> bool:
        return name not in self.config.queries

"""The ``prometheus`` MetricsSource: instant queries for health, range queries for charts."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cd4ml_console_prometheus import METRICS, TEMPLATE_NAMES, PrometheusConfig
from cd4ml_console_prometheus.queries import QueryBook
from console.domain import LiveWindow, MetricPoint, MetricSeries, ServingHealth, ShadowFigures
from console.plugins import BackendContext
from console.plugins import http as tp
from console.plugins.credentials import Credential, alookup, credential_name, require
from console.ports import BackendError, InvalidResponse, NotFound

UNITS = {"latency_p95_ms": "ms", "error_rate": "", "traffic_rps": "req/s", "prediction_mean": ""}
MAX_POINTS = 11_000  # Prometheus refuses range queries resolving to more points per series


def choose_step(start: float, end: float, points: int, min_step: float) -> float:
    """Seconds between points so that ``points`` of them span ``start``..``end``."""
    span = max(end - start, 0.0)
    step = span / max(points - 1, 1)
    step = max(step, min_step, span / (MAX_POINTS - 1))
    return math.ceil(step * 1000) / 1000


def anchored_start(start: float, end: float, step: float) -> float:
    """The first evaluation time at or after ``start`` on a grid ending exactly at ``end``, so
    the newest point of a chart is always "now" (the value health() shows)."""
    return end - math.floor(max(end - start, 0.0) / step + 1e-9) * step


class PrometheusMetrics:
    """MetricsSource over the Prometheus HTTP API (``/api/v1/query``, ``/api/v1/query_range``)."""

    name = "prometheus"

    def __init__(self, config: PrometheusConfig, ctx: BackendContext) -> None:
        self.config = config
        self.ctx = ctx
        self.book = QueryBook(config)
        self.api = tp.HttpApi(
            backend=self.name,
            base_url=config.url,
            timeout=config.timeout_seconds or ctx.timeout,
            credential=self._credential if config.auth != "none" else None,
            scheme="basic" if config.auth == "basic" else "bearer",
            headers={"Accept": "application/json"},
            max_connections=config.max_concurrency,
            auth_hint=f"run `cd4ml-console login {credential_name(config, self.name)}`",
            forbidden_hint="the proxy in front of Prometheus refuses this user",
        )
        self._slots = asyncio.Semaphore(config.max_concurrency)

    async def _credential(self) -> Credential | None:
        name = credential_name(self.config, self.name)
        return require(await alookup(name, self.config, timeout=self.api.timeout))

    # -- the HTTP API -------------------------------------------------------------------

    async def _api(self, path: str, params: dict[str, str], what: str) -> Any:
        """``data`` of a successful API answer; a refused query names the config key to fix."""
        async with self._slots:
            try:
                resp = await self.api.get(path, params=params)
            except BackendError as exc:
                if type(exc) is BackendError and what in TEMPLATE_NAMES:
                    query = params.get("query", "")
                    short = query if len(query) <= 160 else query[:159] + "…"
                    raise BackendError(
                        f"Prometheus refused the {what} query {short!r}: {exc.message}",
                        backend=self.name,
                        hint=f"fix backends.metrics.queries.{what}"
                        if not self.book.is_default(what)
                        else "check the metric and label names in backends.metrics",
                    ) from None
                raise
        doc = self.api.json_of(resp, "a Prometheus API answer")
        if not isinstance(doc, dict) or doc.get("status") != "success" or "data" not in doc:
            said = self.api.explain(resp) if isinstance(doc, dict) and doc.get("error") else ""
            raise InvalidResponse(
                f"{self.api.where(path)} did not answer like the Prometheus API"
                + (f": {said}" if said else ""),
                backend=self.name,
                hint="is backends.metrics.url the Prometheus server (not an exporter)?",
            )
        return doc["data"]

    def _result(self, data: Any, kind: str, path: str) -> list[dict[str, Any]]:
        if (
            not isinstance(data, dict)
            or data.get("resultType") != kind
            or not isinstance(data.get("result"), list)
        ):
            got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
            raise InvalidResponse(
                f"{self.api.where(path)} returned a {got}, not a {kind}",
                backend=self.name,
                hint="a query template must return an instant vector",
            )
        return [r for r in data["result"] if isinstance(r, dict)]

    @staticmethod
    def _number(pair: Any) -> tuple[float, float] | None:
        """(timestamp, value) of a ``[ts, "v"]`` pair; None for NaN/Inf or a bad pair."""
        try:
            ts, value = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            return None
        return (ts, value) if math.isfinite(value) and math.isfinite(ts) else None

    async def instant(self, query: str, at: float, what: str = "") -> list[dict[str, Any]]:
        """The vector ``query`` evaluates to at ``at`` (unix seconds)."""
        path = "/api/v1/query"
        data = await self._api(path, {"query": query, "time": f"{at:.3f}"}, what)
        return self._result(data, "vector", path)

    async def range(
        self, query: str, start: float, end: float, step: float, what: str = ""
    ) -> list[dict[str, Any]]:
        """The matrix of ``query`` from ``start`` to ``end`` every ``step`` seconds."""
        path = "/api/v1/query_range"
        params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = await self._api(path, params, what)
        return self._result(data, "matrix", path)

    def _single(self, result: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
        if len(result) > 1:
            raise InvalidResponse(
                f"the {metric} query returned {len(result)} series, not one",
                backend=self.name,
                hint=f"aggregate it with sum(...) in backends.metrics.queries.{metric}",
            )
        return result[0] if result else None

    # -- the port -----------------------------------------------------------------------

    async def health(self, model: str, stage: str) -> ServingHealth:
        """Each metric now, and the version answering most requests over the rate window."""
        now = tp.wall_clock()
        names = (*METRICS, "version")
        results = await asyncio.gather(
            *(self.instant(self.book.render(n, model, stage), now, n) for n in names)
        )
        values: dict[str, float | None] = {}
        for metric, result in zip(METRICS, results, strict=False):
            row = self._single(result, metric)
            pair = self._number(row.get("value")) if row is not None else None
            values[metric] = pair[1] if pair is not None else None
        version = self._busiest(results[-1])
        if all(not r for r in results):
            raise NotFound(
                f"Prometheus at {self.api.safe_base} has no series for model {model!r} in stage "
                f"{stage!r}",
                backend=self.name,
                hint=f"check the {self.config.model_label}/{self.config.stage_label} labels and "
                "that Prometheus scrapes the model server",
            )
        return ServingHealth(
            model=model,
            stage=stage,
            version=version,
            observed_at=datetime.fromtimestamp(now, UTC),
            **values,
        )

    def _busiest(self, result: Sequence[dict[str, Any]]) -> str | None:
        best: tuple[float, str] | None = None
        for row in result:
            label = row.get("metric", {}).get(self.config.version_label)
            pair = self._number(row.get("value"))
            if not isinstance(label, str) or not label or pair is None:
                continue
            if best is None or (pair[1], label) > best:
                best = (pair[1], label)
        if best is None or (best[0] <= 0 and len(result) > 1):
            return None
        return best[1]

    async def series(
        self,
        model: str,
        stage: str,
        metric: str,
        *,
        since: datetime | None = None,
        points: int = 60,
        version: str | None = None,
    ) -> MetricSeries:
        """``metric`` from ``since`` (default: lookback_seconds ago) to now in about ``points``
        evenly spaced values, oldest first (of ``version``'s series only, when given); NaN
        (e.g. no traffic) leaves a gap."""
        if metric not in UNITS:
            raise NotFound(
                f"unknown metric {metric!r}; use one of {', '.join(UNITS)}", backend=self.name
            )
        empty = MetricSeries(model=model, stage=stage, metric=metric, unit=UNITS[metric])
        if points <= 0:
            return empty
        end = tp.wall_clock()
        start = since.timestamp() if since is not None else end - self.config.lookback_seconds
        start = min(start, end)
        step = choose_step(start, end, points, self.config.min_step_seconds)
        start = anchored_start(start, end, step)
        query = self.book.render(metric, model, stage, version)
        row = self._single(await self.range(query, start, end, step, metric), metric)
        if row is None:
            return empty
        values = row.get("values")
        if not isinstance(values, list):
            raise InvalidResponse(
                f"the {metric} range query returned a series without values", backend=self.name
            )
        kept = [p for p in map(self._number, values) if p is not None][-points:]
        return empty.model_copy(
            update={
                "points": tuple(
                    MetricPoint(at=datetime.fromtimestamp(ts, UTC), value=v) for ts, v in kept
                )
            }
        )

    async def window(
        self, model: str, stage: str, *, version: str | None = None, seconds: float = 600.0
    ) -> LiveWindow:
        """Counts over the last ``seconds`` from ``increase()`` at one evaluation time (the
        covered span is the one asked for: a series younger than it counts what it has)."""
        now = tp.wall_clock()
        queries = self.book.window_queries(model, stage, version, seconds)
        results = dict(
            zip(
                queries,
                await asyncio.gather(*(self.instant(q, now) for q in queries.values())),
                strict=True,
            )
        )
        requests = self._scalar(results["requests"])
        if requests is None and not results["version"]:
            raise NotFound(
                f"Prometheus at {self.api.safe_base} has no {self.config.requests_metric} series "
                f"for model {model!r} in stage {stage!r}"
                + (f" version {version!r}" if version else "")
                + f" over the last {round(seconds)}s",
                backend=self.name,
                hint=f"check the {self.config.model_label}/{self.config.stage_label} labels "
                "(or stage_matchers) and that Prometheus scrapes the model server",
            )
        errors = self._scalar(results["errors"])
        return LiveWindow(
            model=model,
            stage=stage,
            version=version or self._busiest(results["version"]),
            seconds=seconds,
            requests=requests or 0.0,
            errors=errors if errors is not None else 0.0,
            latency_p95_ms=self._scalar(results["latency_p95_ms"]),
            scores=self._buckets(results["scores"]),
            shadow=self._shadow(results["shadow"]),
            observed_at=datetime.fromtimestamp(now, UTC),
        )

    def _scalar(self, result: list[dict[str, Any]]) -> float | None:
        pair = self._number(result[0].get("value")) if len(result) == 1 else None
        return pair[1] if pair is not None else None

    def _buckets(self, result: list[dict[str, Any]]) -> tuple[tuple[float, float], ...]:
        out = []
        for row in result:
            le = row.get("metric", {}).get("le")
            pair = self._number(row.get("value"))
            try:
                bound = float(le)
            except (TypeError, ValueError):
                continue
            if pair is not None:
                out.append((bound, pair[1]))
        return tuple(sorted(out))

    def _shadow(self, result: list[dict[str, Any]]) -> ShadowFigures | None:
        c = self.config
        compared = differ = 0.0
        baselines: dict[str, float] = {}
        for row in result:
            labels = row.get("metric", {})
            pair = self._number(row.get("value"))
            if pair is None:
                continue
            compared += pair[1]
            if labels.get(c.agreement_label) == c.differ_value:
                differ += pair[1]
            base = str(labels.get(c.baseline_label, ""))
            baselines[base] = baselines.get(base, 0.0) + pair[1]
        if not baselines:
            return None
        baseline = max(baselines.items(), key=lambda kv: kv[1])[0]
        return ShadowFigures(baseline_version=baseline or None, compared=compared, differ=differ)

    async def check(self) -> str:
        """Prometheus's version, and how many model/stage pairs have the requests metric."""
        resp = await self.api.get("/api/v1/status/buildinfo")
        doc = self.api.json_of(resp, "Prometheus build information")
        version = doc.get("data", {}).get("version", "?") if isinstance(doc, dict) else "?"
        c = self.config
        inner = f"{c.requests_metric}{{{c.matchers}}}" if c.matchers else c.requests_metric
        query = f"count(count by ({c.model_label}, {c.stage_label}) ({inner}))"
        result = await self.instant(query, tp.wall_clock())
        pair = self._number(result[0].get("value")) if result else None
        pairs = int(pair[1]) if pair is not None else 0
        where = f"Prometheus {version} at {self.api.safe_base}"
        if not pairs:
            return f"warning: {where} has no {c.requests_metric} series with {c.model_label}/{c.stage_label} labels"
        return f"{where}: {pairs} model/stage pairs"

    async def aclose(self) -> None:
        await self.api.aclose()

    def __repr__(self) -> str:
        return f"PrometheusMetrics({self.api.safe_base!r})"

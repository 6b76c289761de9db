"""The embedded ``metrics`` backend: scrape a Prometheus text-exposition endpoint directly and
derive serving health from the difference between consecutive scrapes."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from console.backends.plugin import ScrapeConfig
from console.domain import MetricPoint, MetricSeries, ServingHealth
from console.logs import excerpt
from console.plugins import BackendContext
from console.ports import BackendError, InvalidResponse, NotFound, Unauthorized, Unreachable

MAX_BODY = 20 * 1024 * 1024
QUANTILE = 0.95
monotonic = time.monotonic  # module attribute so tests can drive the clock
UNITS = {"latency_p95_ms": "ms", "error_rate": "", "traffic_rps": "req/s", "prediction_mean": ""}

# (sample name, sorted labels) -> (value, (model, stage, version, field, le))
Sample = tuple[float, tuple[str, str, str, str, float]]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], Sample]


def safe_url(url: str) -> str:
    """``url`` without userinfo and query string, fit for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The ``q`` quantile of cumulative histogram buckets, interpolating inside the bucket."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):  # like Prometheus: the highest finite bound
                finite = [b for b in bounds if not math.isinf(b)]
                return finite[-1] if finite else None
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return None


@dataclass
class _Window:
    """Sums over all series of one (model, stage): deltas, or totals on the first scrape."""

    buckets: dict[float, float] = field(default_factory=dict)
    lat_sum: float = 0.0
    lat_count: float = 0.0
    requests: float = 0.0
    errors: float = 0.0
    pred_sum: float = 0.0
    pred_count: float = 0.0
    has_requests: bool = False
    versions: dict[str, float] = field(default_factory=dict)
    lat_versions: dict[str, float] = field(default_factory=dict)
    created: float | None = None

    def add(self, fieldname: str, version: str, le: float, value: float) -> None:
        if fieldname == "created":
            self.created = value if self.created is None else min(self.created, value)
        elif fieldname == "bucket":
            self.buckets[le] = self.buckets.get(le, 0.0) + value
        elif fieldname in ("requests", "errors"):
            self.has_requests = True
            self.requests += value
            self.errors += value if fieldname == "errors" else 0.0
            self.versions[version] = self.versions.get(version, 0.0) + value
        else:
            setattr(self, fieldname, getattr(self, fieldname) + value)
            if fieldname == "lat_count":
                self.lat_versions[version] = self.lat_versions.get(version, 0.0) + value

    def busiest(self) -> tuple[str, float]:
        """The version label with the most requests in the window (("", 0) when unlabelled)."""
        counts = self.versions if self.has_requests else self.lat_versions
        return max(counts.items(), key=lambda kv: kv[1], default=("", 0.0))

    def derive(self, elapsed: float | None, now: float) -> dict[str, float | None]:
        p95 = quantile(QUANTILE, self.buckets)
        if p95 is None and self.lat_count > 0:
            p95 = self.lat_sum / self.lat_count
        count = self.requests if self.has_requests else self.lat_count
        if elapsed is None and self.created is not None and now > self.created:
            elapsed = now - self.created  # first scrape: average since the counters were created
        return {
            "latency_p95_ms": p95 * 1000 if p95 is not None else None,
            "error_rate": self.errors / self.requests if self.requests > 0 else None,
            "traffic_rps": count / elapsed if elapsed else None,
            "prediction_mean": self.pred_sum / self.pred_count if self.pred_count > 0 else None,
        }


class ScrapeMetrics:
    """MetricsSource scraping one ``/metrics`` endpoint; keeps a bounded history in memory."""

    name = "scrape"

    def __init__(self, config: ScrapeConfig, ctx: BackendContext) -> None:
        self.config = config
        self.ctx = ctx
        self.url = safe_url(config.url)
        self._client = httpx.AsyncClient(timeout=ctx.timeout, follow_redirects=False)
        self._prev: dict[tuple[str, tuple[tuple[str, str], ...]], float] | None = None
        self._prev_at = 0.0
        self._last_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._latest: dict[tuple[str, str], ServingHealth] = {}
        self._served: dict[tuple[str, str], str] = {}
        self._series: dict[tuple[str, str, str], deque[MetricPoint]] = {}
        self._matched = 0
        self._failure: tuple[float, BackendError] | None = None
        c = config
        req = c.requests_metric
        self._fields = {
            f"{c.latency_metric}_bucket": "bucket",
            f"{c.latency_metric}_sum": "lat_sum",
            f"{c.latency_metric}_count": "lat_count",
            req: "requests",
            f"{req.removesuffix('_total')}_created": "created",
            f"{c.prediction_metric}_sum": "pred_sum",
            f"{c.prediction_metric}_count": "pred_count",
        }
        if not req.endswith("_total"):
            self._fields[f"{req}_total"] = "requests"

    # -- scraping -------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self.config.url, self.url)

    async def _fetch(self) -> bytes:
        url, limit = self.url, MAX_BODY
        try:
            async with self._client.stream(
                "GET", self.config.url, headers={"Accept": "text/plain;version=0.0.4"}
            ) as resp:
                if resp.status_code in (401, 403):
                    raise Unauthorized(
                        f"{url} refused the scrape (HTTP {resp.status_code})",
                        backend=self.name,
                        hint="put the credentials the endpoint expects in backends.metrics.url",
                    )
                if not 200 <= resp.status_code < 300:
                    raise Unreachable(f"{url} answered HTTP {resp.status_code}", backend=self.name)
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise self._too_big()
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise self._too_big()
                return bytes(body)
        except httpx.TimeoutException:
            raise Unreachable(
                f"{url} did not answer within {self.ctx.timeout:.0f}s", backend=self.name
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise Unreachable(
                f"{url} is not an http(s) URL", backend=self.name, hint="fix backends.metrics.url"
            ) from None
        except httpx.ConnectError as exc:
            raise Unreachable(
                f"could not connect to {url}: {self._redact(str(exc)) or 'connection failed'}",
                backend=self.name,
                hint="is the model server running and the URL right?",
            ) from None
        except httpx.HTTPError as exc:
            raise Unreachable(
                f"scraping {url} failed: {type(exc).__name__}: {self._redact(str(exc))}",
                backend=self.name,
            ) from None

    def _too_big(self) -> InvalidResponse:
        return InvalidResponse(
            f"{self.url} returned more than {MAX_BODY >> 20} MB; is it a /metrics endpoint?",
            backend=self.name,
        )

    def _parse(self, body: bytes) -> Samples:
        """The samples this backend reads, keyed by series; anything unparsable is refused."""
        c = self.config
        out: Samples = {}
        try:
            for family in text_string_to_metric_families(body.decode("utf-8")):
                for s in family.samples:
                    fieldname = self._fields.get(s.name)
                    labels = s.labels
                    if (
                        fieldname is None
                        or c.model_label not in labels
                        or c.stage_label not in labels
                    ):
                        continue
                    if fieldname == "requests" and labels.get(c.outcome_label) == c.error_value:
                        fieldname = "errors"
                    le = float(labels["le"]) if fieldname == "bucket" else 0.0
                    key = (s.name, tuple(sorted(labels.items())))
                    where = (labels[c.model_label], labels[c.stage_label])
                    out[key] = (
                        float(s.value),
                        (*where, labels.get(c.version_label, ""), fieldname, le),
                    )
        except Exception as exc:  # the parser raises ValueError, IndexError, KeyError, ...
            raise InvalidResponse(
                f"{self.url} did not return Prometheus text format: {excerpt(str(exc), 120)}",
                backend=self.name,
                hint="point backends.metrics.url at the model server's /metrics",
            ) from None
        return out

    async def _scrape(self) -> None:
        try:
            try:
                body = await asyncio.wait_for(self._fetch(), self.ctx.timeout * 2)
            except TimeoutError:
                raise Unreachable(
                    f"{self.url} did not finish answering within {self.ctx.timeout * 2:.0f}s",
                    backend=self.name,
                ) from None
            samples = await asyncio.to_thread(self._parse, body)
        except BackendError as exc:
            self._failure = (monotonic(), exc)
            raise
        self._failure = None
        self._apply(samples, monotonic(), datetime.now(UTC))

    def _apply(self, samples: Samples, mono: float, now: datetime) -> None:
        prev = self._prev
        windows: dict[tuple[str, str], _Window] = {}
        for key, (value, (model, stage, version, fieldname, le)) in samples.items():
            if prev is not None and fieldname != "created":
                old = prev.get(key)
                value = value if old is None or value < old else value - old  # reset: restart
            windows.setdefault((model, stage), _Window()).add(fieldname, version, le, value)
        elapsed = mono - self._prev_at if prev is not None else None
        latest: dict[tuple[str, str], ServingHealth] = {}
        for (model, stage), window in windows.items():
            values = window.derive(elapsed, now.timestamp())
            busiest = window.busiest()
            if busiest[0] and (busiest[1] > 0 or (model, stage) not in self._served):
                self._served[(model, stage)] = busiest[0]
            latest[(model, stage)] = ServingHealth(
                model=model,
                stage=stage,
                version=self._served.get((model, stage)),
                observed_at=now,
                **values,
            )
            for metric, derived in values.items():
                if derived is not None:
                    series = self._series.setdefault(
                        (model, stage, metric), deque(maxlen=self.config.history)
                    )
                    series.append(MetricPoint(at=now, value=derived))
        self._latest, self._matched = latest, len(samples)
        self._prev = {key: value for key, (value, _) in samples.items()}
        self._prev_at = self._last_at = mono

    async def _fresh(self, force: bool = False) -> None:
        """Scrape unless the last one is recent; concurrent callers share one scrape."""
        half = self.config.interval_seconds / 2
        recent = self._last_at is not None and monotonic() - self._last_at < half
        if recent and not force:
            return
        failed = self._failure
        if failed is not None and not force and monotonic() - failed[0] < half:
            err = failed[1]  # a recent failure answers again until it is half an interval old
            raise type(err)(err.message, backend=err.backend, hint=err.hint)
        task = self._inflight
        if task is None or task.done():
            task = self._inflight = asyncio.create_task(self._scrape())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(task)

    def _not_found(self, model: str, stage: str) -> NotFound:
        seen = ", ".join(sorted({f"{m}/{s}" for m, s in self._latest})[:5]) or "none"
        return NotFound(
            f"{self.url} has no metrics for model {model!r} in stage {stage!r} (seen: {seen})",
            backend=self.name,
            hint=f"check the {self.config.model_label}/{self.config.stage_label} labels",
        )

    # -- the port -------------------------------------------------------------------------

    async def health(self, model: str, stage: str) -> ServingHealth:
        """The newest derived values and the version currently served for (model, stage)."""
        await self._fresh()
        found = self._latest.get((model, stage))
        if found is None:
            raise self._not_found(model, stage)
        return found

    async def series(
        self,
        model: str,
        stage: str,
        metric: str,
        *,
        since: datetime | None = None,
        points: int = 60,
    ) -> MetricSeries:
        """The last ``points`` values of ``metric`` (one per scrape), oldest first."""
        if metric not in UNITS:
            raise NotFound(
                f"unknown metric {metric!r}; use one of {', '.join(UNITS)}", backend=self.name
            )
        await self._fresh()
        if (model, stage) not in self._latest and not any(
            (model, stage, m) in self._series for m in UNITS
        ):
            raise self._not_found(model, stage)
        kept = list(self._series.get((model, stage, metric), ()))
        if since is not None:
            kept = [p for p in kept if p.at >= since]
        kept = kept[-points:] if points > 0 else []
        return MetricSeries(
            model=model, stage=stage, metric=metric, unit=UNITS[metric], points=tuple(kept)
        )

    async def check(self) -> str:
        """Scrape now; say how many model/stage pairs the endpoint exposes."""
        await self._fresh(force=True)
        if not self._matched:
            names = f"{self.config.latency_metric}, {self.config.requests_metric}"
            raise InvalidResponse(
                f"{self.url} exposes none of {names} with {self.config.model_label}/"
                f"{self.config.stage_label} labels",
                backend=self.name,
                hint="set latency_metric/requests_metric/... in backends.metrics",
            )
        return f"scraped {self.url}: {len(self._latest)} model/stage pairs, {self._matched} series"

    async def aclose(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
        await self._client.aclose()

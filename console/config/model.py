"""The config schema (TOML). Unknown keys are errors that name the key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

KIND_NAMES = ("code", "registry", "data", "ci", "metrics", "deploy", "audit", "notify")

# The embedded default for each kind when the config does not name one.
DEFAULT_BACKENDS: dict[str, str] = {
    "code": "git",
    "registry": "gto",
    "data": "dvc",
    "ci": "runs-folder",
    "audit": "sqlite-audit",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``90s``, ``10m``, ``1h30m`` (ValueError naming the text)."""
    value = text.strip().replace(" ", "")
    parts = _DURATION.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"{text!r} is not a duration like 90s, 10m or 1h30m")
    return sum(float(n) * _SECONDS[u] for n, u in parts)


def _duration(value: str | None) -> str | None:
    if value is not None and parse_duration(value) <= 0:
        raise ValueError(f"{value!r}: a duration must be longer than 0s")
    return value


SLO_DEFAULTS = {"min_requests": 100, "window": "10m", "degraded_at": 0.8}


@dataclass(frozen=True)
class SLO:
    """The objectives of one model, workspace defaults filled in (see ``ConsoleConfig.slo_for``)."""

    p95_ms: float | None
    error_rate: float | None
    min_requests: int
    window: str
    degraded_at: float

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)

    @property
    def configured(self) -> bool:
        """Whether any objective is set (without one there is nothing to judge)."""
        return self.p95_ms is not None or self.error_rate is not None


class SLOConfig(Strict):
    """Service level objectives of live serving: ``[slo]`` for every model, ``[models.M.slo]``
    for one (its keys win, the others come from ``[slo]``)."""

    p95_ms: float | None = Field(default=None, gt=0, description="p95 latency limit, ms")
    error_rate: float | None = Field(
        default=None, ge=0, le=1, description="error rate limit, a fraction (0.02 = 2 %)"
    )
    min_requests: int | None = Field(
        default=None, ge=1, description="fewer requests in the window: the verdict is unknown"
    )
    window: str | None = Field(default=None, description="the span judged, e.g. 10m")
    degraded_at: float | None = Field(
        default=None, gt=0, le=1, description="share of a limit from which a stage is degraded"
    )

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        return _duration(value)

    def over(self, base: SLOConfig) -> SLOConfig:
        """These objectives, with the keys this table does not set taken from ``base``."""
        mine = {k: getattr(self, k) for k in self.model_fields_set}
        return base.model_copy(update=mine)

    def resolved(self) -> SLO:
        values = {k: getattr(self, k) for k in type(self).model_fields}
        for key, default in SLO_DEFAULTS.items():
            if values[key] is None:
                values[key] = default
        return SLO(**values)


class WorkspaceConfig(Strict):
    """Where the workspace lives. Relative paths are relative to the config file's folder."""

    path: Path = Path(".")
    name: str = ""
    state_dir: Path = Path(".cd4ml")


class BackendConfig(BaseModel):
    """``type`` picks the plugin; every other key is the plugin's own option, checked by it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class MetricSpec(Strict):
    """How to read a model metric: which way is better, its unit and label."""

    direction: Literal["higher", "lower"] = "higher"
    unit: str = ""
    label: str = ""
    format: str = "{:.3f}"


class ModelConfig(Strict):
    """Per-model settings; file paths override the data backend's defaults for this model."""

    description: str = ""
    key_metrics: list[str] = Field(default_factory=list)
    params: str | None = None
    metrics: str | None = None
    data: list[str] | None = None
    schema_file: str | None = Field(default=None, alias="schema")
    serving_url: str | None = None
    slo: SLOConfig | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MetricBound(Strict):
    """A gate on one metric: absolute bounds and/or a delta vs the stage's current version."""

    metric: str
    min: float | None = None
    max: float | None = None
    max_regression: float | None = Field(
        default=None, description="largest allowed change for the worse vs the current version"
    )
    # Only these models (empty: every model that records the metric).
    models: list[str] = Field(default_factory=list)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


class ChangeWindow(Strict):
    """Allowed (or denied) weekdays and hours, in the given timezone."""

    days: list[Weekday] = Field(default_factory=lambda: list(WORKDAYS))
    start_hour: int = Field(default=0, ge=0, le=23)
    end_hour: int = Field(default=24, ge=1, le=24)
    timezone: str = "UTC"
    deny: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name like 'Europe/Berlin' or 'UTC'"
            ) from None
        return value


class RollbackPolicy(Strict):
    """Who may roll back and what they must confirm (fast path: no quorum by default)."""

    required_approvals: int = Field(default=0, ge=0)
    confirm_model_name: bool = True
    roles: list[str] = Field(default_factory=lambda: ["release_manager", "admin"])


class LiveGateConfig(Strict):
    """Gates on the candidate's live figures (shadow or canary traffic in ``source_stage``)
    over a window, against bounds and against the target stage's version."""

    source_stage: str | None = Field(
        default=None, description="where the candidate serves (default: the stage before)"
    )
    window: str | None = Field(default=None, description="default: the model's SLO window")
    min_requests: int = Field(default=100, ge=1)
    max_p95_ms: float | None = Field(default=None, gt=0)
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    max_p95_regression_ms: float | None = Field(default=None, ge=0)
    max_error_rate_regression: float | None = Field(default=None, ge=0, le=1)
    max_disagreement: float | None = Field(default=None, ge=0, le=1)
    max_psi: float | None = Field(default=None, ge=0)

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        return _duration(value)


class StagePolicy(Strict):
    """Gates and approval rules for promoting into one stage."""

    required_approvals: int = Field(default=0, ge=0, le=10)
    approver_roles: list[str] = Field(default_factory=lambda: ["release_manager", "admin"])
    require_ci_success: bool = True
    metric_bounds: list[MetricBound] = Field(default_factory=list)
    schema_change_needs_ack: bool = True
    windows: list[ChangeWindow] = Field(default_factory=list)
    approval_ttl_hours: float = Field(default=24.0, gt=0)
    # A pending request no one acted on expires after this long.
    request_ttl_hours: float = Field(default=168.0, gt=0)
    # Rollback rules for this stage; unset: policy.rollback.
    rollback: RollbackPolicy | None = None
    # The candidate's live figures must pass these (unset: no live gates).
    live: LiveGateConfig | None = None
    # A version once rolled back from this stage (or a later one) returns only when acknowledged.
    rolled_back_needs_ack: bool = True


class PolicyConfig(Strict):
    stages: dict[str, StagePolicy] = Field(default_factory=dict)
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)

    def for_stage(self, stage: str) -> StagePolicy:
        """The policy of ``stage`` (the defaults when the config has none)."""
        return self.stages.get(stage) or StagePolicy()

    def rollback_for(self, stage: str) -> RollbackPolicy:
        """The rollback rules of ``stage``: its own, else ``policy.rollback``."""
        own = self.stages.get(stage)
        return own.rollback if own is not None and own.rollback is not None else self.rollback


class RolesConfig(Strict):
    """OS user names per role. ``default`` is the role of anyone not listed."""

    admin: list[str] = Field(default_factory=list)
    release_manager: list[str] = Field(default_factory=list)
    viewer: list[str] = Field(default_factory=list)
    default: Literal["viewer", "release_manager", "admin"] = "release_manager"
    # Other names an OS user appears under in git and registries (author names, emails,
    # tagger names): the four-eyes rule treats them as that user.
    aliases: dict[str, list[str]] = Field(default_factory=dict)


class UIConfig(Strict):
    theme: str = "dark"
    refresh_seconds: float = Field(default=5.0, ge=0.5, le=3600)


class ConsoleConfig(Strict):
    """The whole configuration, as read from ``cd4ml-console.toml``."""

    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    stages: list[str] = Field(default_factory=lambda: ["staging", "production"])
    production_stage: str = ""
    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    slo: SLOConfig = Field(default_factory=SLOConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    roles: RolesConfig = Field(default_factory=RolesConfig)
    ui: UIConfig = Field(default_factory=UIConfig)
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    # Set by the loader, not by the file.
    source: Path | None = Field(default=None, exclude=True)
    stages_origin: str = Field(default="", exclude=True)  # where `stages` came from (doctor)

    @field_validator("stages")
    @classmethod
    def _stages_unique(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('list at least one stage, e.g. stages = ["staging", "production"]')
        dupes = sorted({s for s in value if value.count(s) > 1})
        if dupes:
            raise ValueError(f"stage names must be unique; repeated: {', '.join(dupes)}")
        return value

    @field_validator("backends")
    @classmethod
    def _known_kinds(cls, value: dict[str, BackendConfig]) -> dict[str, BackendConfig]:
        unknown = sorted(set(value) - set(KIND_NAMES))
        if unknown:
            raise ValueError(
                f"unknown backend kind {', '.join(unknown)}; use one of {', '.join(KIND_NAMES)}"
            )
        return value

    @model_validator(mode="after")
    def _production_is_a_stage(self) -> ConsoleConfig:
        if self.production_stage and self.production_stage not in self.stages:
            raise ValueError(
                f"production_stage {self.production_stage!r} is not in stages {self.stages}"
            )
        unknown = sorted(set(self.policy.stages) - set(self.stages))
        if unknown:
            raise ValueError(
                f"policy.stages names unknown stage(s) {unknown}; stages are {self.stages}"
            )
        for name, policy in self.policy.stages.items():
            source = policy.live.source_stage if policy.live else None
            if source is not None and source not in self.stages:
                raise ValueError(
                    f"policy.stages.{name}.live.source_stage {source!r} is not in stages "
                    f"{self.stages}"
                )
        return self

    @property
    def prod_stage(self) -> str:
        """The stage whose live health is shown: as configured, else the stage named
        ``production`` or ``prod``, else the last stage."""
        if self.production_stage:
            return self.production_stage
        return next((s for s in ("production", "prod") if s in self.stages), self.stages[-1])

    @property
    def root(self) -> Path:
        base = self.source.parent if self.source else Path.cwd()
        return (base / self.workspace.path).resolve()

    @property
    def state_path(self) -> Path:
        return (self.root / self.workspace.state_dir).resolve()

    def backend(self, kind: str) -> BackendConfig | None:
        """The configured backend for ``kind``, or the embedded default, or None."""
        if kind in self.backends:
            return self.backends[kind]
        default = DEFAULT_BACKENDS.get(kind)
        return BackendConfig(type=default) if default else None

    def metric_spec(self, name: str) -> MetricSpec:
        return self.metrics.get(name, MetricSpec())

    def slo_for(self, model: str) -> SLO:
        """``model``'s objectives: its own ``slo`` keys over the workspace's ``[slo]``."""
        own = self.models.get(model)
        table = own.slo.over(self.slo) if own is not None and own.slo is not None else self.slo
        return table.resolved()

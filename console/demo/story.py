"""The demo's scripted history: people, models, versions (params, metrics, data, serving
behaviour, CI outcome), stage moves, a waiting promotion request and seeded audit events.

Times are given as days before the build's ``now`` so that every build tells the same story
relative to the moment it was built; :mod:`console.demo.build` turns them into dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from console.domain import AuditEvent, PromotionRequest, RequestState

STAGES = ("staging", "production")
PRODUCTION = "production"
HOUR = 1 / 24


@dataclass(frozen=True)
class Person:
    """A member of the demo team; ``handle`` is also their OS user name in the roles config."""

    handle: str
    name: str
    email: str
    role: str

    @property
    def ident(self) -> str:
        return f"{self.name} <{self.email}>"


PEOPLE: dict[str, Person] = {
    p.handle: p
    for p in (
        Person("alice", "Alice Chen", "alice.chen@example.com", "ML engineer, fraud"),
        Person("bob", "Bob Okafor", "bob.okafor@example.com", "data engineer"),
        Person("carmen", "Carmen Ruiz", "carmen.ruiz@example.com", "ML engineer, churn"),
        Person("farid", "Farid Haddad", "farid.haddad@example.com", "ML engineer, pricing"),
        Person("dev", "Dev Patel", "dev.patel@example.com", "release manager"),
        Person("erin", "Erin Novak", "erin.novak@example.com", "SRE on call, admin"),
    )
}
RELEASE_MANAGERS = ("dev", "erin")
ADMINS = ("erin",)


@dataclass(frozen=True)
class DataSnapshot:
    """The training data of a version: rows, files and columns (name, JSON type)."""

    rows: int
    nfiles: int
    columns: tuple[tuple[str, str], ...]
    reason: str  # the data commit's subject


@dataclass(frozen=True)
class Serving:
    """How a version behaves when served: latency (median, log-normal spread), errors, scores."""

    latency_ms: float
    spread: float
    error_rate: float
    score_mean: float
    score_sd: float


@dataclass(frozen=True)
class VersionStory:
    """One registered version and the commits that made it."""

    version: str
    author: str
    days: float  # the version commit (metrics written by the training run)
    change: str  # subject of the commit that changed params / code before training
    params: dict[str, Any]
    metrics: dict[str, float]
    serving: Serving
    data: DataSnapshot | None = None  # None: same data as the previous version
    train_note: str = ""  # a line added to train.py by the change commit
    ci: str = "success"  # conclusion of the version commit's newest CI run
    ci_note: str = ""


@dataclass(frozen=True)
class ModelStory:
    """A model of the demo and its versions, oldest first."""

    name: str
    description: str
    owner: str
    task: str  # classification | regression
    labels: tuple[str, ...]
    key_metrics: tuple[str, ...]
    versions: tuple[VersionStory, ...]

    def version(self, text: str) -> VersionStory:
        return next(v for v in self.versions if v.version == text)


@dataclass(frozen=True)
class StageMove:
    """A stage assignment (a GTO tag) made by ``actor`` ``days`` before now."""

    model: str
    stage: str
    version: str
    actor: str
    days: float
    message: str = ""
    rollback: bool = False


@dataclass(frozen=True)
class ExtraCommit:
    """A commit that is not part of a model version (CI, docs, tests)."""

    days: float
    author: str
    subject: str
    files: dict[str, str] = field(default_factory=dict)
    ci: str = "success"


METRICS: dict[str, tuple[str, str, str]] = {
    # name: (direction, unit, label)
    "auc": ("higher", "", "AUC"),
    "precision": ("higher", "", "precision"),
    "recall": ("higher", "", "recall"),
    "logloss": ("lower", "", "log loss"),
    "rmse": ("lower", "EUR", "RMSE"),
    "mape": ("lower", "%", "MAPE"),
    "latency_p95_ms": ("lower", "ms", "p95 latency (offline)"),
}


def _columns(spec: str) -> tuple[tuple[str, str], ...]:
    return tuple((c.split(":")[0], c.split(":")[1]) for c in spec.split())


_FRAUD_COLS = _columns(
    "amount:number merchant_category:string merchant_country:string hour_of_day:integer "
    "card_age_days:integer txn_velocity_1h:integer is_fraud:boolean"
)
_FRAUD_COLS_V2 = _columns(
    "amount:number merchant_category:string hour_of_day:integer card_age_days:integer "
    "txn_velocity_1h:integer device_age_days:integer ip_risk_score:number is_fraud:boolean"
)
_CHURN_COLS = _columns(
    "tenure_months:integer plan:string monthly_spend:number support_tickets_90d:integer "
    "last_login_days:integer region:string churned:boolean"
)
_PRICE_COLS = _columns(
    "sku_category:string base_price:number competitor_price:number inventory_days:integer "
    "season:string promo_flag:boolean sold_price:number"
)


def _gbm(n: int, depth: int, lr: float, **extra: Any) -> dict[str, Any]:
    return {
        "train": {
            "algorithm": "gradient_boosting",
            "n_estimators": n,
            "max_depth": depth,
            "learning_rate": lr,
            **extra,
        },
        "split": {"test_size": 0.2, "seed": 42},
    }


FRAUD = ModelStory(
    name="fraud-detector",
    description="Scores card transactions for fraud in the payment authorisation path.",
    owner="alice",
    task="classification",
    labels=("payments", "realtime"),
    key_metrics=("auc", "recall", "latency_p95_ms"),
    versions=(
        VersionStory(
            "v1.0.0",
            "alice",
            41,
            "fraud-detector: first gradient boosting baseline",
            _gbm(200, 6, 0.1),
            {"auc": 0.912, "precision": 0.801, "recall": 0.702, "latency_p95_ms": 14.0},
            Serving(22, 0.35, 0.004, 0.18, 0.12),
            data=DataSnapshot(
                250_000, 12, _FRAUD_COLS, "data: add fraud-detector training set (Jan-Feb)"
            ),
        ),
        VersionStory(
            "v1.1.0",
            "alice",
            32,
            "fraud-detector: raise n_estimators to 400",
            _gbm(400, 6, 0.1),
            {"auc": 0.924, "precision": 0.812, "recall": 0.731, "latency_p95_ms": 17.0},
            Serving(26, 0.33, 0.004, 0.17, 0.12),
        ),
        VersionStory(
            "v1.2.0",
            "alice",
            23,
            "fraud-detector: lower learning rate, deeper trees",
            _gbm(400, 8, 0.05),
            {"auc": 0.931, "precision": 0.826, "recall": 0.744, "latency_p95_ms": 19.0},
            Serving(28, 0.32, 0.003, 0.16, 0.11),
            data=DataSnapshot(
                265_000, 13, _FRAUD_COLS, "data: refresh fraud-detector set with March transactions"
            ),
        ),
        VersionStory(
            "v1.3.0",
            "alice",
            13,
            "fraud-detector: balanced class weights",
            _gbm(400, 8, 0.05, class_weight="balanced"),
            {"auc": 0.936, "precision": 0.809, "recall": 0.781, "latency_p95_ms": 19.5},
            Serving(29, 0.3, 0.003, 0.21, 0.13),
            train_note="class_weight = params['train'].get('class_weight')",
        ),
        VersionStory(
            "v2.0.0",
            "alice",
            3.2,
            "fraud-detector: use device signals",
            _gbm(500, 8, 0.05, class_weight="balanced"),
            {"auc": 0.948, "precision": 0.834, "recall": 0.812, "latency_p95_ms": 21.0},
            Serving(31, 0.3, 0.003, 0.2, 0.12),
            data=DataSnapshot(
                265_000,
                13,
                _FRAUD_COLS_V2,
                "data: add device_age_days and ip_risk_score, drop "
                "merchant_country (privacy review PR-311)",
            ),
            train_note="features += ['device_age_days', 'ip_risk_score']",
        ),
    ),
)

CHURN = ModelStory(
    name="churn-predictor",
    description="Predicts which subscribers will cancel within 30 days; feeds retention offers.",
    owner="carmen",
    task="classification",
    labels=("crm", "batch"),
    key_metrics=("auc", "logloss"),
    versions=(
        VersionStory(
            "v0.9.0",
            "carmen",
            39,
            "churn-predictor: logistic regression baseline",
            {
                "train": {"algorithm": "logistic_regression", "C": 1.0, "max_iter": 200},
                "split": {"test_size": 0.25, "seed": 42},
            },
            {"auc": 0.811, "logloss": 0.442},
            Serving(12, 0.25, 0.002, 0.31, 0.18),
            data=DataSnapshot(
                120_000, 6, _CHURN_COLS, "data: add churn-predictor training set (6 months)"
            ),
        ),
        VersionStory(
            "v1.0.0",
            "carmen",
            30,
            "churn-predictor: switch to gradient boosting",
            _gbm(300, 5, 0.08),
            {"auc": 0.842, "logloss": 0.401},
            Serving(18, 0.3, 0.003, 0.29, 0.17),
        ),
        VersionStory(
            "v1.1.0",
            "carmen",
            19,
            "churn-predictor: weight samples by plan",
            _gbm(300, 5, 0.08, sample_weight="plan"),
            {"auc": 0.857, "logloss": 0.384},
            Serving(18, 0.3, 0.003, 0.27, 0.16),
            data=DataSnapshot(
                310_000,
                14,
                _CHURN_COLS,
                "data: resample churn-predictor set (12 months, stratified by plan)",
            ),
        ),
        VersionStory(
            "v1.2.0",
            "carmen",
            8,
            "churn-predictor: tune min_child_samples",
            _gbm(350, 5, 0.06, min_child_samples=40),
            {"auc": 0.861, "logloss": 0.379},
            Serving(19, 0.3, 0.003, 0.27, 0.16),
        ),
        VersionStory(
            "v1.3.0",
            "carmen",
            1.8,
            "churn-predictor: add tenure buckets",
            _gbm(400, 6, 0.06, min_child_samples=40, tenure_buckets=True),
            {"auc": 0.866, "logloss": 0.377},
            Serving(21, 0.3, 0.004, 0.33, 0.19),
            train_note="bucket tenure_months into 0-3, 4-12, 13-36, 37+",
            ci="failure",
            ci_note="calibration check failed: ECE 0.071 > 0.050",
        ),
    ),
)

PRICE = ModelStory(
    name="price-recommender",
    description="Recommends a shelf price per SKU from demand, stock and competitor prices.",
    owner="farid",
    task="regression",
    labels=("pricing", "realtime"),
    key_metrics=("rmse", "mape", "latency_p95_ms"),
    versions=(
        VersionStory(
            "v1.0.0",
            "farid",
            37,
            "price-recommender: ridge regression baseline",
            {
                "train": {"algorithm": "ridge", "alpha": 1.0},
                "split": {"test_size": 0.2, "seed": 42},
            },
            {"rmse": 12.4, "mape": 8.9, "latency_p95_ms": 9.0},
            Serving(15, 0.25, 0.002, 0.52, 0.14),
            data=DataSnapshot(
                480_000, 20, _PRICE_COLS, "data: add price-recommender sales history"
            ),
        ),
        VersionStory(
            "v1.1.0",
            "farid",
            27,
            "price-recommender: gradient boosting",
            _gbm(250, 6, 0.1),
            {"rmse": 11.1, "mape": 7.8, "latency_p95_ms": 13.0},
            Serving(20, 0.28, 0.003, 0.5, 0.13),
        ),
        VersionStory(
            "v1.2.0",
            "farid",
            17,
            "price-recommender: competitor price lag features",
            _gbm(300, 7, 0.08),
            {"rmse": 10.2, "mape": 7.1, "latency_p95_ms": 15.0},
            Serving(24, 0.3, 0.003, 0.49, 0.12),
            train_note="features += ['competitor_price_lag_7d']",
        ),
        VersionStory(
            "v1.2.1",
            "farid",
            11,
            "price-recommender: clip negative prices to floor",
            _gbm(300, 7, 0.08, price_floor=0.5),
            {"rmse": 10.1, "mape": 7.0, "latency_p95_ms": 15.0},
            Serving(24, 0.3, 0.002, 0.49, 0.12),
            train_note="predictions = predictions.clip(min=params['train']['price_floor'])",
        ),
        VersionStory(
            "v1.3.0",
            "farid",
            2.6,
            "price-recommender: deep ensemble of 5 models",
            {
                "train": {
                    "algorithm": "deep_ensemble",
                    "members": 5,
                    "hidden": [256, 128],
                    "epochs": 40,
                    "price_floor": 0.5,
                },
                "split": {"test_size": 0.2, "seed": 42},
            },
            {"rmse": 9.3, "mape": 6.4, "latency_p95_ms": 41.0},
            Serving(420, 0.35, 0.09, 0.55, 0.2),
            train_note="ensemble = [build_member(i) for i in range(params['train']['members'])]",
        ),
    ),
)

MODELS: tuple[ModelStory, ...] = (FRAUD, CHURN, PRICE)


def _promote(model: str, version: str, staging: float, production: float | None) -> list[StageMove]:
    moves = [StageMove(model, "staging", version, "dev", staging, f"Promote {version} to staging")]
    if production is not None:
        moves.append(StageMove(model, PRODUCTION, version, "dev", production, f"Release {version}"))
    return moves


ROLLBACK_REASON = (
    "Rollback after INC-2041: p95 latency above 400 ms and 9% errors since the v1.3.0 rollout"
)

STAGE_MOVES: tuple[StageMove, ...] = tuple(
    sorted(
        [
            *_promote("fraud-detector", "v1.0.0", 40, 38.5),
            *_promote("fraud-detector", "v1.1.0", 31, 29),
            *_promote("fraud-detector", "v1.2.0", 22, 20),
            *_promote("fraud-detector", "v1.3.0", 12, 9.8),
            *_promote("fraud-detector", "v2.0.0", 2.5, None),
            *_promote("churn-predictor", "v0.9.0", 38, 36),
            *_promote("churn-predictor", "v1.0.0", 29, 27),
            *_promote("churn-predictor", "v1.1.0", 18, 16),
            *_promote("churn-predictor", "v1.2.0", 7, 5),
            *_promote("price-recommender", "v1.0.0", 36, 34),
            *_promote("price-recommender", "v1.1.0", 26, 24),
            *_promote("price-recommender", "v1.2.0", 16, 14),
            *_promote("price-recommender", "v1.2.1", 10.5, 9),
            *_promote("price-recommender", "v1.3.0", 2.0, 20 * HOUR),
            StageMove(
                "price-recommender",
                PRODUCTION,
                "v1.2.1",
                "erin",
                5 * HOUR,
                ROLLBACK_REASON,
                rollback=True,
            ),
        ],
        key=lambda m: -m.days,
    )
)

PIPELINE = (
    "name: train-and-evaluate\non: [push]\njobs:\n  lint: {run: make lint}\n"
    "  unit-tests: {run: make test}\n  train: {run: dvc repro}\n"
)
_CACHED = PIPELINE + "  cache: {path: ~/.cache/pip, key: pip}\n"
EXTRA_COMMITS: tuple[ExtraCommit, ...] = (
    ExtraCommit(35, "erin", "ci: cache pip downloads", {".ci/pipeline.yml": _CACHED}),
    ExtraCommit(
        25.5,
        "dev",
        "docs: release checklist",
        {
            "docs/release-checklist.md": "# Release checklist\n\n1. CI green\n"
            "2. Metrics within the production bounds\n3. One approval by a release "
            "manager who is not the author\n4. Watch the dashboards for 30 minutes\n"
        },
    ),
    ExtraCommit(
        15.3,
        "erin",
        "ci: run the evaluation job on every push",
        {".ci/pipeline.yml": _CACHED + "  evaluate: {run: make evaluate}\n"},
        ci="failure",
    ),
    ExtraCommit(
        15.1,
        "erin",
        "ci: fix evaluate target name",
        {".ci/pipeline.yml": _CACHED + "  evaluate: {run: make eval}\n"},
    ),
    ExtraCommit(
        6,
        "erin",
        "docs: on-call runbook for serving incidents",
        {
            "docs/runbook.md": "# Serving runbook\n\nError rate above 2% or p95 above "
            "250 ms for 10 minutes: roll back first, investigate second.\n"
        },
    ),
    ExtraCommit(
        4,
        "alice",
        "fraud-detector: unit tests for the feature builder",
        {
            "tests/test_fraud_features.py": "def test_amount_is_positive():\n"
            "    assert abs(-3.5) == 3.5\n"
        },
    ),
    ExtraCommit(
        3 * HOUR,
        "erin",
        "docs: incident notes INC-2041 (price-recommender v1.3.0)",
        {
            "docs/incidents/INC-2041.md": "# INC-2041\n\nv1.3.0 of price-recommender "
            "went to production; p95 latency rose to ~450 ms and errors to 9% (the deep "
            "ensemble times out under load). Rolled back to v1.2.1.\n"
        },
    ),
)

PENDING_REQUEST_DAYS = 1.1
PENDING_REQUEST_REASON = (
    "Device signals raise recall from 0.781 to 0.812 at equal precision; the schema change "
    "(merchant_country dropped) was signed off in privacy review PR-311."
)


def story_model(name: str) -> ModelStory:
    """The story of model ``name``; KeyError when the demo has no such model."""
    for model in MODELS:
        if model.name == name:
            return model
    raise KeyError(name)


def serving_profile(model: str, version: str | None) -> Serving:
    """Serving behaviour of a version; versions outside the story get a healthy profile
    derived from their name, so a newly registered version still serves deterministically."""
    try:
        return story_model(model).version(version or "").serving
    except (KeyError, StopIteration):
        import zlib

        h = zlib.crc32(f"{model}@{version}".encode())
        return Serving(
            15 + h % 25, 0.3, 0.002 + (h >> 8) % 5 / 1000, 0.2 + (h >> 12) % 50 / 100, 0.12
        )


def at(now: datetime, days: float) -> datetime:
    """The moment ``days`` before ``now``, to the second."""
    return (now - timedelta(days=days)).replace(microsecond=0)


def expected_stages() -> dict[str, dict[str, str]]:
    """What each stage of each model points at once the whole story has happened."""
    out: dict[str, dict[str, str]] = {m.name: {} for m in MODELS}
    for move in STAGE_MOVES:
        out[move.model][move.stage] = move.version
    return out


def pending_requests(now: datetime) -> list[PromotionRequest]:
    """Promotion requests waiting for approval (not written anywhere yet: story data)."""
    return [
        PromotionRequest(
            id="req-demo-0001",
            model="fraud-detector",
            version="v2.0.0",
            stage=PRODUCTION,
            from_version="v1.3.0",
            requested_by="alice",
            reason=PENDING_REQUEST_REASON,
            created_at=at(now, PENDING_REQUEST_DAYS),
            state=RequestState.PENDING,
        )
    ]


def move_time(now: datetime, move: StageMove) -> datetime:
    """When ``move`` happened: its day offset plus a stable jitter of up to 20 minutes, so
    the GTO tag and the seeded audit event carry the same moment."""
    import zlib

    jitter = zlib.crc32(f"{move.model}#{move.stage}#{move.version}#{move.days}".encode()) % 1200
    return at(now, move.days) + timedelta(seconds=jitter)


def seeded_events(now: datetime) -> list[AuditEvent]:
    """Audit events the demo's history implies, oldest first (seq/hash left for the store)."""
    events: list[AuditEvent] = []
    current: dict[tuple[str, str], str] = {}
    for move in STAGE_MOVES:
        before = current.get((move.model, move.stage), "")
        current[(move.model, move.stage)] = move.version
        approved = move.stage == PRODUCTION and not move.rollback
        events.append(
            AuditEvent(
                seq=0,
                at=move_time(now, move),
                actor=move.actor,
                action="rollback" if move.rollback else "promote",
                model=move.model,
                version=move.version,
                stage=move.stage,
                before=before,
                after=move.version,
                reason=move.message,
                result="executed",
                details={"source": "demo", **({"approved_by": ["erin"]} if approved else {})},
            )
        )
    for req in pending_requests(now):
        events.append(
            AuditEvent(
                seq=0,
                at=req.created_at,
                actor=req.requested_by,
                action="request",
                model=req.model,
                version=req.version,
                stage=req.stage,
                before=req.from_version or "",
                after=req.version,
                reason=req.reason,
                result="pending",
                request_id=req.id,
                details={"source": "demo"},
            )
        )
    return sorted(events, key=lambda e: e.at)

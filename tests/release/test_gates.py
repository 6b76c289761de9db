"""Gates, table-driven: each row is the facts, the policy and the expected decision/numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from console.config.model import ChangeWindow, LiveGateConfig, MetricBound, MetricSpec, StagePolicy
from console.domain import CIConclusion, CIRun, CIStatus, GateResult, LiveWindow, ShadowFigures
from console.services.incidents import RolledBack
from console.services.release import gates as g

SPECS = {"auc": MetricSpec(direction="higher"), "latency": MetricSpec(direction="lower", unit="ms")}


def spec(name: str) -> MetricSpec:
    return SPECS.get(name, MetricSpec())


def facts(**kw) -> g.GateFacts:
    base = {"model": "m", "version": "v2", "stage": "production", "commit": "a" * 40,
            "base_version": "v1"}  # fmt: skip
    return g.GateFacts(**{**base, **kw})


def run(pipeline: str, conclusion: CIConclusion | None, status=CIStatus.COMPLETED) -> CIRun:
    return CIRun(id=pipeline, pipeline=pipeline, commit="a" * 40, status=status,
                 conclusion=conclusion)  # fmt: skip


METRIC_CASES = [
    # bound, value, base, expected [(gate, passed, observed, threshold)]
    (MetricBound(metric="auc", min=0.8), 0.85, None, [("metric:auc:min", True, 0.85, 0.8)]),
    (MetricBound(metric="auc", min=0.8), 0.79, None, [("metric:auc:min", False, 0.79, 0.8)]),
    (MetricBound(metric="latency", max=50), 51.0, None, [("metric:latency:max", False, 51.0, 50)]),
    (MetricBound(metric="latency", max=50), 50.0, None, [("metric:latency:max", True, 50.0, 50)]),
    # higher is better: a drop of 0.02 is a regression of 0.02
    (MetricBound(metric="auc", max_regression=0.01), 0.88, 0.90,
     [("metric:auc:regression", False, 0.02, 0.01)]),
    (MetricBound(metric="auc", max_regression=0.01), 0.895, 0.90,
     [("metric:auc:regression", True, 0.005, 0.01)]),
    (MetricBound(metric="auc", max_regression=0.0), 0.95, 0.90,
     [("metric:auc:regression", True, -0.05, 0.0)]),
    # lower is better: latency up by 5 ms is a regression of 5
    (MetricBound(metric="latency", max_regression=2), 25.0, 20.0,
     [("metric:latency:regression", False, 5.0, 2)]),
    (MetricBound(metric="latency", max_regression=2), 15.0, 20.0,
     [("metric:latency:regression", True, -5.0, 2)]),
    # nothing to compare with: passes, says so
    (MetricBound(metric="auc", max_regression=0.01), 0.5, None,
     [("metric:auc:regression", True, None, 0.01)]),
    (MetricBound(metric="auc", min=0.8, max=0.99, max_regression=0.01), 0.9, 0.9,
     [("metric:auc:min", True, 0.9, 0.8), ("metric:auc:max", True, 0.9, 0.99),
      ("metric:auc:regression", True, 0.0, 0.01)]),
]  # fmt: skip


@pytest.mark.parametrize(("bound", "value", "base", "expected"), METRIC_CASES)
def test_metric_gates(bound: MetricBound, value: float, base: float | None, expected) -> None:
    f = facts(
        metrics={bound.metric: value},
        base_metrics={bound.metric: base} if base is not None else {},
    )
    got = g.metric_gates(bound, f, spec)
    assert [(r.gate, r.passed) for r in got] == [(e[0], e[1]) for e in expected]
    for r, e in zip(got, expected, strict=True):
        assert r.observed == (pytest.approx(e[2]) if e[2] is not None else None)
        assert r.threshold == e[3]


MISSING_CASES = [
    # candidate metrics, base metrics, error, passed, blocking, detail fragment
    ({}, {}, "", False, True, "records no metric 'auc'"),  # no metrics at all: fail closed
    ({"rmse": 1.0}, {"auc": 0.9}, "", False, True, "(v1 in production does)"),
    ({"rmse": 1.0}, {"rmse": 1.1}, "", True, False, "does not apply"),  # the model has no auc
    ({"rmse": 1.0}, {}, "data down", False, True, "data down"),
]


@pytest.mark.parametrize(("metrics", "base", "error", "passed", "blocking", "why"), MISSING_CASES)
def test_missing_metric(metrics, base, error, passed: bool, blocking: bool, why: str) -> None:
    f = facts(metrics=metrics, base_metrics=base, metrics_error=error)
    (got,) = g.metric_gates(MetricBound(metric="auc", min=0.8), f, spec)
    assert (got.gate, got.passed, got.blocking) == ("metric:auc", passed, blocking)
    assert why in got.detail


def test_bound_limited_to_some_models() -> None:
    policy = StagePolicy(
        metric_bounds=[MetricBound(metric="auc", min=0.99, models=["other"])],
        require_ci_success=False, schema_change_needs_ack=False,
    )  # fmt: skip
    assert g.quality_gates(policy, facts(metrics={"auc": 0.5}), spec) == ()


def test_missing_metric_fails_closed() -> None:
    got = g.metric_gates(MetricBound(metric="auc", min=0.8), facts(), spec)
    assert [(r.gate, r.passed) for r in got] == [("metric:auc", False)]
    assert "records no metric 'auc'" in got[0].detail
    broken = g.metric_gates(
        MetricBound(metric="auc", min=0.8), facts(metrics_error="data down"), spec
    )
    assert broken[0].detail == "data down"


CI_CASES = [
    ([], False, "none"),
    ([run("train", CIConclusion.SUCCESS)], True, "success"),
    ([run("train", CIConclusion.SUCCESS), run("lint", CIConclusion.FAILURE)], False, "failure"),
    ([run("train", None, CIStatus.IN_PROGRESS)], False, "running"),
    ([run("train", CIConclusion.CANCELLED)], False, "failure"),
]


@pytest.mark.parametrize(("runs", "passed", "state"), CI_CASES)
def test_ci_gate(runs: list[CIRun], passed: bool, state: str) -> None:
    r = g.ci_gate(facts(ci_runs=tuple(runs)))
    assert (r.passed, r.observed, r.threshold) == (passed, state, "success")


def test_ci_gate_fails_closed_when_ci_is_unknown() -> None:
    r = g.ci_gate(facts(ci_error="no ci backend is configured"))
    assert not r.passed and "CI unknown" in r.detail


SCHEMA_CASES = [
    ((), False, True, 0),
    ((g.SchemaChange("device_age", "added"),), False, False, 1),
    ((g.SchemaChange("device_age", "added"), g.SchemaChange("country", "removed")), True, True, 2),
]


@pytest.mark.parametrize(("changes", "ack", "passed", "n"), SCHEMA_CASES)
def test_schema_gate(changes, ack: bool, passed: bool, n: int) -> None:
    r = g.schema_gate(facts(schema_changes=changes), acknowledged=ack)
    assert (r.passed, r.observed) == (passed, n)
    if changes and not ack:
        # Words both front ends can act on: the CLI's flag would mean nothing in the TUI's
        # dialog (a checkbox there); the CLI says its flag itself (test_cli).
        assert "needs an acknowledgement" in r.detail and "--" not in r.detail


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)  # 16 = Monday


OFFICE = ChangeWindow(days=["mon", "tue", "wed", "thu", "fri"], start_hour=9, end_hour=17,
                      timezone="Europe/Berlin")  # fmt: skip
FREEZE = ChangeWindow(days=["fri"], start_hour=12, end_hour=24, timezone="UTC", deny=True)
NIGHT = ChangeWindow(days=["sat", "sun"], start_hour=22, end_hour=6, timezone="UTC")

WINDOW_CASES = [
    ([], at(21, 3), True),  # no windows: always
    ([OFFICE], at(16, 8), True),  # Mon 09:00 Berlin
    ([OFFICE], at(16, 7, 59), False),  # Mon 08:59 Berlin
    ([OFFICE], at(16, 16), False),  # Mon 17:00 Berlin: end is exclusive
    ([OFFICE], at(21, 10), False),  # Saturday
    ([OFFICE, FREEZE], at(20, 10), True),  # Fri 11:00 Berlin, 10:00 UTC: before the freeze
    ([OFFICE, FREEZE], at(20, 12), False),  # Fri 12:00 UTC: frozen
    ([FREEZE], at(19, 13), True),  # only a deny window, not in it
    ([NIGHT], at(21, 23), True),  # wraps past midnight
    ([NIGHT], at(22, 5), True),
    ([NIGHT], at(22, 7), False),
]


@pytest.mark.parametrize(("windows", "now", "passed"), WINDOW_CASES)
def test_window_gate(windows: list[ChangeWindow], now: datetime, passed: bool) -> None:
    r = g.window_gate(windows, now)
    assert r.passed is passed, r.detail
    if windows:
        assert r.observed and r.threshold


def test_window_override_passes_and_names_the_admin() -> None:
    r = g.window_gate([OFFICE], at(21, 10), overridden_by="erin")
    assert r.passed and "overridden by admin erin" in r.detail and "sat" in str(r.observed)


@pytest.mark.parametrize(
    ("required", "approvers", "passed"), [(0, [], True), (1, [], False), (2, ["a"], False),
                                          (2, ["a", "b"], True)]
)  # fmt: skip
def test_approvals_gate(required: int, approvers: list[str], passed: bool) -> None:
    r = g.approvals_gate(required, approvers, ["release_manager"] * len(approvers), ["admin"])
    assert (r.passed, r.observed, r.threshold) == (passed, len(approvers), required)


APPROVAL_WORDS = [
    # required, approvers, the gate's words, its numbers
    (0, [], "no approvals required", ""),  # not "0 of 0 approval(s): none yet"
    (1, [], "0 of 1 approval: none yet; may approve: admin", "0 of 1"),
    (2, ["a"], "1 of 2 approvals: a (release_manager); may approve: admin", "1 of 2"),
]


@pytest.mark.parametrize(("required", "approvers", "detail", "numbers"), APPROVAL_WORDS)
def test_approvals_gate_words(required, approvers, detail: str, numbers: str) -> None:
    r = g.approvals_gate(required, approvers, ["release_manager"] * len(approvers), ["admin"])
    assert (r.detail, g.gate_numbers(r)) == (detail, numbers)


NUMBER_WORDS = [
    # bound, value, base: what the numbers column says (never a bare "-0.012 vs 0.01")
    (MetricBound(metric="auc", max_regression=0.01), 0.948, 0.936, "0.012 better"),
    (MetricBound(metric="auc", max_regression=0.01), 0.931, 0.936, "0.005 worse ≤ 0.01"),
    (MetricBound(metric="auc", max_regression=0.01), 0.9, 0.936, "0.036 worse > 0.01"),
    (MetricBound(metric="auc", max_regression=0.01), 0.936, 0.936, "unchanged"),
    (MetricBound(metric="latency", max_regression=2), 15.0, 20.0, "5 better"),
    (MetricBound(metric="auc", min=0.8), 0.85, None, "0.85 ≥ 0.8"),
    (MetricBound(metric="auc", min=0.8), 0.79, None, "0.79 < 0.8"),
    (MetricBound(metric="latency", max=50), 51.0, None, "51 > 50"),
    (MetricBound(metric="latency", max=50), 41.0, None, "41 ≤ 50"),
]  # fmt: skip


@pytest.mark.parametrize(("bound", "value", "base", "words"), NUMBER_WORDS)
def test_gate_numbers_say_better_or_worse(bound: MetricBound, value, base, words: str) -> None:
    f = facts(metrics={bound.metric: value},
              base_metrics={bound.metric: base} if base is not None else {})  # fmt: skip
    (got,) = g.metric_gates(bound, f, spec)
    assert g.gate_numbers(got) == words


NOT_APPLICABLE = [
    # candidate metrics, base metrics, n/a (a bound on a metric the model never records)
    ({"rmse": 1.0}, {"rmse": 1.1}, True),
    ({"auc": 0.9}, {"auc": 0.9}, False),
    ({"rmse": 1.0}, {"auc": 0.9}, False),  # production records it: the candidate fails
]


@pytest.mark.parametrize(("metrics", "base", "na"), NOT_APPLICABLE)
def test_a_bound_on_a_metric_never_recorded_reads_n_a(metrics, base, na: bool) -> None:
    got = g.metric_gates(MetricBound(metric="auc", min=0.8), facts(metrics=metrics,
                         base_metrics=base), spec)  # fmt: skip
    assert g.not_applicable(got[0]) is na
    if na:
        assert got[0].detail.startswith("n/a: auc is not recorded") and g.gate_numbers(got[0]) == ""


def test_quality_gates_follow_the_policy_and_evidence_ignores_process_gates() -> None:
    policy = StagePolicy(
        metric_bounds=[MetricBound(metric="auc", min=0.8)], require_ci_success=False,
        schema_change_needs_ack=True,
    )  # fmt: skip
    f = facts(metrics={"auc": 0.9})
    quality = g.quality_gates(policy, f, spec)
    assert [q.gate for q in quality] == ["metric:auc:min", "schema"]
    h1 = g.evidence_hash("m", "v2", "production", "a" * 40, "v1", quality)
    window = GateResult(gate="window", passed=False, detail="x", observed="sat 10:00")
    assert g.evidence_hash("m", "v2", "production", "a" * 40, "v1", (*quality, window)) == h1
    assert g.evidence_hash("m", "v2", "production", "a" * 40, "v0", quality) != h1
    worse = g.quality_gates(policy, facts(metrics={"auc": 0.91}), spec)
    assert g.evidence_hash("m", "v2", "production", "a" * 40, "v1", worse) != h1


# -- live gates and the rolled-back gate -----------------------------------------------------

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
LIVE = LiveGateConfig(
    min_requests=100, max_p95_ms=250, max_error_rate=0.02, max_p95_regression_ms=50,
    max_error_rate_regression=0.01, max_disagreement=0.2, max_psi=0.25,
)  # fmt: skip
SCORES = ((0.25, 40.0), (0.5, 70.0), (0.75, 90.0), (1.0, 100.0))


def window(
    stage: str,
    version: str,
    p95: float,
    errors: float,
    requests: float = 1000,
    shadow: tuple[float, float] | None = None,
    age: float = 0,
) -> LiveWindow:
    figures = (
        ShadowFigures(baseline_version="v1", compared=shadow[0], differ=shadow[1])
        if shadow
        else None
    )
    return LiveWindow(model="m", stage=stage, version=version, seconds=600, requests=requests,
                      errors=errors, latency_p95_ms=p95, scores=SCORES, shadow=figures,
                      observed_at=NOW - timedelta(seconds=age))  # fmt: skip


def live_facts(
    cand: LiveWindow | None, prod: LiveWindow | None = None, why: str = ""
) -> g.GateFacts:
    prod = prod if prod is not None else window("production", "v1", 200, 5)
    live = g.LiveFacts(source_stage="staging", window_seconds=600, candidate=cand,
                       candidate_error=why, production=prod)  # fmt: skip
    return facts(live=live)


def by_gate(gates: list[GateResult]) -> dict[str, tuple[bool, object]]:
    return {x.gate: (x.passed, x.observed) for x in gates}


def test_live_gates_pass_on_enough_good_shadow_figures() -> None:
    cand = window("staging", "v2", 240, 15, shadow=(980, 49))
    got = by_gate(g.live_gates(LIVE, live_facts(cand), NOW))
    assert got == {
        "live:requests": (True, 1000), "live:p95_ms:max": (True, 240),
        "live:error_rate:max": (True, 0.015), "live:p95_ms:regression": (True, 40),
        "live:error_rate:regression": (True, 0.01), "live:disagreement:max": (True, 0.05),
        "live:psi:max": (True, 0.0),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("cand", "failing", "detail"),
    [
        (window("staging", "v2", 251, 15, shadow=(980, 49)), {"live:p95_ms:max",
         "live:p95_ms:regression"}, "p95 of v2 in staging 251 ms > maximum 250 ms"),
        (window("staging", "v2", 240, 21, shadow=(979, 49)), {"live:error_rate:max",
         "live:error_rate:regression"}, "error rate of v2 in staging 2.1% > maximum 2.0%"),
        (window("production", "v2", 120, 0, shadow=(1000, 201)), {"live:disagreement:max"},
         "decision differs from v1 on 20.1% of 1,000 mirrored requests (> 20.0%)"),
    ],
)  # fmt: skip
def test_live_gates_fail_with_their_numbers(
    cand: LiveWindow, failing: set[str], detail: str
) -> None:
    gates = g.live_gates(LIVE, live_facts(cand), NOW)
    assert {x.gate for x in gates if not x.passed} == failing
    assert detail in [x.detail for x in gates]


def test_worse_than_production_by_more_than_the_margin_fails() -> None:
    cand = window("staging", "v2", 251, 5, shadow=(1000, 0))
    prod = window("production", "v1", 200, 5)
    gate = next(x for x in g.live_gates(LIVE, live_facts(cand, prod), NOW)
                if x.gate == "live:p95_ms:regression")  # fmt: skip
    assert not gate.passed and gate.observed == 51
    assert gate.detail == "p95 251 ms vs 200 ms (v1 in production): +51 ms; allowed +50 ms"


@pytest.mark.parametrize(
    ("cand", "why", "first"),
    [
        (None, "scrape: could not connect", "unknown: v2 in staging: scrape: could not connect"),
        (window("staging", "v2", 100, 0, requests=99, shadow=(99, 0)), "",
         "99 requests to v2 in staging in 10 min (< 100 needed)"),
        (window("staging", "v2", 100, 0, age=601, shadow=(1000, 0)), "",
         "unknown: the newest figures of v2 in staging are 10 min old"),
    ],
)  # fmt: skip
def test_unknown_live_figures_fail_closed(cand, why: str, first: str) -> None:
    gates = g.live_gates(LIVE, live_facts(cand, why=why), NOW)
    assert not any(x.passed for x in gates)
    assert len(gates) == 7 and gates[0].detail == first
    assert all(x.detail.startswith("unknown:") for x in gates[1:])


def test_no_production_figures_fail_the_regression_gates_only() -> None:
    cand = window("staging", "v2", 100, 0, shadow=(1000, 0))
    f = facts(live=g.LiveFacts(source_stage="staging", window_seconds=600, candidate=cand,
                               production_error="scrape: no series"))  # fmt: skip
    failing = {x.gate for x in g.live_gates(LIVE, f, NOW) if not x.passed}
    assert failing == {"live:p95_ms:regression", "live:error_rate:regression", "live:psi:max"}


def rolled(stage: str = "production") -> RolledBack:
    return RolledBack(model="m", version="v2", stage=stage, at=NOW, by="erin",
                      reason="INC-2041: p95 1.7 s", to_version="v1")  # fmt: skip


def test_a_rolled_back_version_returns_only_when_acknowledged() -> None:
    stages = ["staging", "production"]
    assert g.rolled_back_gate(facts(), stages, acknowledged=False) is None
    gate = g.rolled_back_gate(facts(rolled_back=rolled()), stages, acknowledged=False)
    assert gate is not None and not gate.passed and gate.blocking
    assert gate.detail == (
        "v2 was rolled back from production to v1 at 2025-03-14 09:30 UTC by erin: "
        "INC-2041: p95 1.7 s; promoting it again needs --ack-rolled-back"
    )
    ok = g.rolled_back_gate(facts(rolled_back=rolled()), stages, acknowledged=True)
    assert ok is not None and ok.passed and ok.detail.endswith("promoting it again acknowledged")
    earlier = g.rolled_back_gate(
        facts(stage="staging", rolled_back=rolled()), stages, acknowledged=False
    )
    assert earlier is not None and earlier.passed and not earlier.blocking
    unknown = g.rolled_back_gate(
        facts(rolled_back_error="audit: locked"), stages, acknowledged=True
    )
    assert unknown is not None and not unknown.passed  # fail closed


def test_evidence_binds_the_live_verdicts_not_their_moving_numbers() -> None:
    policy = StagePolicy(require_ci_success=False, schema_change_needs_ack=False, live=LIVE)

    def evidence(cand: LiveWindow, **kw) -> str:
        gates = g.quality_gates(policy, live_facts(cand, **kw), spec, now=NOW)
        return g.evidence_hash("m", "v2", "production", "a" * 40, "v1", gates)

    one = evidence(window("staging", "v2", 240, 15, shadow=(980, 49)))
    assert one == evidence(window("staging", "v2", 231, 12, requests=1100, shadow=(1050, 40)))
    assert one != evidence(window("staging", "v2", 251, 15, shadow=(980, 49)))
    rb = g.quality_gates(policy, facts(rolled_back=rolled()), spec, ack_rolled_back=True,
                         stages=["staging", "production"])  # fmt: skip
    assert [x.gate for x in rb] == ["rolled_back"]
    assert g.evidence_hash("m", "v2", "production", "", "v1", rb) != g.evidence_hash(
        "m", "v2", "production", "", "v1", ()
    )

"""Rollback: the previous version from the stage history, confirmation, its own policy."""

from __future__ import annotations

import pytest

from console.domain import ModelVersion, RegistryEvent, RegistryEventKind
from console.services.release import Refused
from console.services.release.rollback import previous_version, rolled_back_from
from tests.release.fakes import World


def assign(version: str, stage: str = "production", message: str = "") -> RegistryEvent:
    return RegistryEvent(
        model="m", kind=RegistryEventKind.ASSIGN, version=version, stage=stage, message=message
    )


def rolled_back_to(version: str) -> RegistryEvent:
    return assign(version, message=f"rollback m {version} to production (req-1): INC-9")


VERSIONS = [ModelVersion(model="m", version=v) for v in ("v1", "v2", "v3")] + [
    ModelVersion(model="m", version="v0", deregistered=True)
]

PREVIOUS = [
    ([assign("v1"), assign("v2")], "v2", "v1"),
    ([assign("v1"), assign("v2"), assign("v3", "staging"), assign("v3")], "v3", "v2"),
    ([assign("v1"), assign("v2"), assign("v1"), assign("v2")], "v2", "v1"),
    ([assign("v0"), assign("v2")], "v2", None),  # deregistered versions are skipped
    ([assign("v2")], "v2", None),
    # The previous holder, even when production moved from it to a lower version ...
    ([assign("v1"), assign("v2"), assign("v3"), assign("v2")], "v2", "v3"),
    ([assign("v1"), assign("v3"), assign("v1")], "v1", "v3"),
    # ... unless that move was a rollback: never propose the version of the last incident
    ([assign("v1"), assign("v2"), assign("v3"), rolled_back_to("v2")], "v2", "v1"),
    ([assign("v1"), assign("v3"), rolled_back_to("v1")], "v1", None),
    # a version rolled back once and promoted again is a holder like any other
    ([assign("v1"), assign("v3"), rolled_back_to("v1"), assign("v3"), assign("v2")], "v2", "v3"),
]


def unassign(version: str, stage: str = "production") -> RegistryEvent:
    return RegistryEvent(model="m", kind=RegistryEventKind.UNASSIGN, version=version, stage=stage)


PULLED = [
    # `gto deprecate m v2 production`: v2 was taken out of the stage on purpose
    ([assign("v1"), assign("v2"), assign("v3"), unassign("v2")], "v3", "v1"),
    ([assign("v1"), assign("v2"), unassign("v1"), assign("v3")], "v3", "v2"),
    # pulled, then put back on purpose: a candidate again
    ([assign("v1"), assign("v2"), unassign("v1"), assign("v1"), assign("v3")], "v3", "v1"),
    # pulled from another stage only: still a production candidate
    ([assign("v1"), assign("v2"), unassign("v2", "staging"), assign("v3")], "v3", "v2"),
    ([assign("v1"), unassign("v1"), assign("v3")], "v3", None),
]


@pytest.mark.parametrize(("history", "current", "expected"), PULLED)
def test_previous_version_skips_versions_unassigned_on_purpose(
    history, current: str, expected: str | None
) -> None:
    assert previous_version(history, "production", current, VERSIONS) == expected


@pytest.mark.parametrize(("history", "current", "expected"), PREVIOUS)
def test_previous_version(history, current: str, expected: str | None) -> None:
    rolled = rolled_back_from(history, "production")
    assert previous_version(history, "production", current, VERSIONS, rolled) == expected


async def test_rollback_moves_back_and_deploys_without_quorum() -> None:
    w = World(approvals=1, deploy=True)
    w.registry.move("production", "v1.1.0", "dev")
    plan = await w.svc("sam").plan_rollback("m")
    assert (plan.op, plan.from_version, plan.version) == ("rollback", "v1.1.0", "v1.0.0")
    assert plan.confirm_model_name and plan.required_approvals == 0 and plan.ready
    assert all(not g.blocking for g in plan.gates if g.gate != "approvals")
    with pytest.raises(Refused, match="type the model name"):
        await w.svc("sam").rollback("m", reason="INC-1", confirmation="")
    with pytest.raises(Refused, match="reason"):
        await w.svc("sam").rollback("m", reason=" ", confirmation="m")
    result = await w.svc("sam").rollback("m", reason="INC-1: errors", confirmation="m")
    assert result.status == "executed" and result.action == "rollback"
    assert w.registry.pointers["production"] == "v1.0.0"
    assert w.deployer is not None and w.deployer.calls[-1] == ("m", "v1.0.0", "production")
    kinds = [(e.action, e.details.get("op") or e.details.get("kind")) for e in w.audit.rows]
    assert kinds[:3] == [("request", "rollback"), ("intent", "rollback"), ("outcome", "rollback")]


async def test_rollback_even_when_gates_fail_and_to_a_named_version() -> None:
    w = World(approvals=0)
    w.registry.move("production", "v1.3.0", "dev")
    result = await w.svc("dev").rollback(
        "m", to_version="v1.2.0", reason="back to the CI-failing one", confirmation="m"
    )
    assert result.status == "executed" and w.registry.pointers["production"] == "v1.2.0"


async def test_rollback_policy_with_approvals_and_per_stage_override() -> None:
    extra = (
        "[policy.stages.production.rollback]\nrequired_approvals = 1\nconfirm_model_name = false\n"
    )
    w = World(approvals=0, extra=extra)
    w.registry.move("production", "v1.1.0", "dev")
    result = await w.svc("dev").rollback("m", reason="INC-2", confirmation="")
    assert result.status == "requested" and w.registry.pointers["production"] == "v1.1.0"
    dialog = await w.svc("rita").plan_approval("m", "v1.0.0", "production")
    assert (dialog.op, dialog.may_approve, dialog.quorum) == ("rollback", "", (0, 1))
    own = await w.svc("dev").plan_approval("m", "v1.0.0", "production")
    assert "someone else must approve" in own.may_approve
    done = await w.svc("rita").approve("m", "v1.0.0", "production", comment="yes")
    assert done.status == "executed" and w.registry.pointers["production"] == "v1.0.0"


async def test_nothing_to_roll_back_to() -> None:
    w = World(approvals=0)
    with pytest.raises(Refused, match="no earlier version"):
        await w.svc("dev").plan_rollback("m", stage="staging")


async def test_rollback_target_from_the_audit_when_the_registry_keeps_no_history() -> None:
    """MLflow keeps no alias history: the console's own record of the last move decides."""
    w = World(approvals=0)
    result = await w.svc("sam").promote("m", "v1.1.0", "production", reason="better")
    assert result.status == "executed"
    w.registry.hist.clear()  # as if the registry remembered nothing
    plan = await w.svc("sam").plan_rollback("m")
    assert (plan.from_version, plan.version) == ("v1.1.0", "v1.0.0")


async def test_a_rolled_back_version_needs_an_acknowledgement_to_return() -> None:
    """Incident memory: the rollback's when, who and why come back in the plan; promoting the
    version again is refused until acknowledged, and the acknowledgement is audited."""
    w = World(approvals=0)
    assert (await w.svc("dev").promote("m", "v1.1.0", "production", reason="auc up")).status == (
        "executed"
    )
    await w.svc("sam").rollback("m", reason="INC-2041: p95 1.7 s", confirmation="m")
    plan = await w.svc("dev").plan_promotion("m", "v1.1.0", "production")
    gate = next(g for g in plan.gates if g.gate == "rolled_back")
    assert not gate.passed and not plan.ready
    assert "was rolled back from production to v1.0.0" in gate.detail
    assert "by sam: INC-2041: p95 1.7 s" in gate.detail
    assert plan.rolled_back is not None and plan.rolled_back["reason"] == "INC-2041: p95 1.7 s"
    with pytest.raises(Refused, match="needs --ack-rolled-back"):
        await w.svc("dev").promote("m", "v1.1.0", "production", reason="fixed")
    refused = w.audit.rows[-1]
    assert refused.result == "refused" and "rolled back" in refused.details["refusal"]
    acked = await w.svc("dev").plan_promotion("m", "v1.1.0", "production", ack_rolled_back=True)
    assert acked.ready and acked.evidence_hash != plan.evidence_hash
    done = await w.svc("dev").promote(
        "m", "v1.1.0", "production", reason="fixed", ack_rolled_back=True
    )
    assert done.status == "executed" and w.registry.pointers["production"] == "v1.1.0"
    request = next(e for e in reversed(w.audit.rows) if e.action == "request")
    assert request.details["ack_rolled_back"] is True
    assert request.details["rolled_back"]["by"] == "sam"


async def test_the_rolled_back_gate_waits_for_its_acknowledgement_through_approval() -> None:
    w = World(approvals=1)
    w.registry.move("production", "v1.1.0", "dev")
    await w.svc("sam").rollback("m", reason="INC-7", confirmation="m")
    asked = await w.svc("dev").promote(
        "m", "v1.1.0", "production", reason="again", ack_rolled_back=True
    )
    assert asked.status == "requested"
    # the approver's gates carry the requester's acknowledgement
    done = await w.svc("rita").approve("m", "v1.1.0", "production", comment="ok")
    assert done.status == "executed"


async def test_the_default_target_is_the_previous_holder_even_at_a_higher_version() -> None:
    w = World(approvals=0)
    w.registry.move("production", "v1.3.0", "dev")
    w.registry.move("production", "v1.1.0", "dev")  # a promotion, though to a lower version
    plan = await w.svc("sam").plan_rollback("m")
    assert (plan.from_version, plan.version, plan.notices) == ("v1.1.0", "v1.3.0", ())


async def test_the_default_target_passes_over_the_version_of_the_last_incident() -> None:
    w = World(approvals=0)
    w.registry.move("production", "v1.1.0", "dev")
    w.registry.move("production", "v1.3.0", "dev")
    done = await w.svc("sam").rollback("m", reason="INC-9: errors", confirmation="m")
    assert (done.status, w.registry.pointers["production"]) == ("executed", "v1.1.0")
    plan = await w.svc("sam").plan_rollback("m")
    assert plan.version == "v1.0.0"
    assert any("v1.3.0 was itself rolled back" in n and "by sam" in n for n in plan.notices)


def test_a_holder_passed_over_is_named_once() -> None:
    from console.services.release.rollback import choose_target

    history = [assign("v1"), assign("v3"), rolled_back_to("v2"), assign("v3"),
               rolled_back_to("v2")]  # fmt: skip
    target, passed = choose_target(history, "production", "v2", VERSIONS,
                                   rolled_back_from(history, "production"))  # fmt: skip
    assert target == "v1" and len(passed) == 1 and passed[0].startswith("v3 was itself rolled")

"""ReleaseService on in-memory ports: requests, four-eyes, quorum, CAS, fail-closed audit."""

from __future__ import annotations

import asyncio

import pytest

from console.ports import Unreachable
from console.services.release import Refused, ReleaseError
from tests.release.fakes import World, commit_of


async def test_plan_preview_changes_nothing_and_lists_the_steps() -> None:
    w = World(approvals=1, deploy=True)
    plan = await w.svc("dev").plan_promotion("m", "v1.1.0", "production")
    assert (plan.from_version, plan.version, plan.required_approvals) == ("v1.0.0", "v1.1.0", 1)
    assert plan.ready is False and plan.request_id is None
    assert any("registry: production of m v1.0.0 -> v1.1.0" in s for s in plan.steps)
    assert any(s.startswith("deploy: fake-deploy") for s in plan.steps)
    auc = next(g for g in plan.gates if g.gate == "metric:auc:regression")
    assert auc.passed and auc.observed == pytest.approx(-0.02)
    assert w.audit.rows == [] and w.registry.assign_calls == 0


async def test_promote_without_quorum_executes_at_once_with_intent_and_outcome() -> None:
    w = World(approvals=0, deploy=True)
    result = await w.svc("dev").promote("m", "v1.1.0", "production", reason="better auc")
    assert result.status == "executed", result.message
    assert w.registry.pointers["production"] == "v1.1.0"
    assert w.audit.actions() == [
        ("request", "pending"), ("intent", "pending"), ("outcome", "executed"),
        ("intent", "pending"), ("outcome", "executed"),
    ]  # fmt: skip
    intent, outcome = w.audit.rows[1], w.audit.rows[2]
    assert intent.details["op"] == "promote" and intent.before == "v1.0.0"
    assert outcome.details["intent_seq"] == intent.seq
    assert intent.details["identity"] == {"user": "dev", "ssh_client": "10.0.0.7"}
    assert w.deployer is not None and w.deployer.calls == [("m", "v1.1.0", "production")]
    assert w.anchors == 1
    assert result.request is not None and result.request["state"] == "executed"


async def test_executing_one_request_cancels_the_other_pending_ones_of_the_stage() -> None:
    w = World(approvals=1)
    await w.svc("dev").promote("m", "v1.1.0", "production", reason="a")
    w.data.by_commit[commit_of("v1.3.0")]["auc"] = 0.95
    await w.svc("rita").promote("m", "v1.3.0", "production", reason="b")
    await w.svc("erin").approve("m", "v1.3.0", "production")
    states = {v.id: v.state.value for v in await w.svc("erin").request_views("m")}
    assert states == {"req-0001": "cancelled", "req-0002": "executed"}
    assert await w.svc("erin").pending("m") == []


async def test_quorum_four_eyes_and_execution_by_the_last_approver() -> None:
    w = World(approvals=2)
    first = await w.svc("dev").promote("m", "v1.1.0", "production", reason="ship it")
    assert first.status == "requested" and first.request is not None
    rid = first.request["id"]
    with pytest.raises(Refused) as own:
        await w.svc("dev").approve("m", "v1.1.0", "production")
    assert own.value.kind == "four_eyes" and "requested" in own.value.message
    with pytest.raises(Refused) as author:
        await w.svc("alice").approve("m", "v1.1.0", "production")
    assert author.value.kind in ("four_eyes", "role")
    with pytest.raises(Refused) as viewer:
        await w.svc("vic").approve("m", "v1.1.0", "production")
    assert viewer.value.kind == "role"
    one = await w.svc("rita").approve("m", "v1.1.0", "production", comment="lgtm")
    assert one.status == "pending" and w.registry.pointers["production"] == "v1.0.0"
    with pytest.raises(Refused, match="already approved"):
        await w.svc("rita").approve("m", "v1.1.0", "production")
    two = await w.svc("erin").approve("m", "v1.1.0", "production", comment="ok")
    assert two.status == "executed" and w.registry.pointers["production"] == "v1.1.0"
    assert two.request is not None and two.request["id"] == rid
    refused = [e for e in w.audit.rows if e.result == "refused"]
    assert {e.actor for e in refused} >= {"dev", "alice", "vic"}
    assert all(e.request_id == rid for e in w.audit.rows if e.actor in ("rita", "erin"))


async def test_author_is_recognised_by_commit_author_email() -> None:
    w = World(approvals=1, extra='[roles.aliases]\nsam = ["Samuel Q"]\n')
    w.code.authors = {commit_of("v1.3.0"): "Samuel Q"}
    w.data.by_commit[commit_of("v1.3.0")]["auc"] = 0.95
    w.registry.vs["v1.3.0"] = w.registry.vs["v1.3.0"].model_copy(update={"created_by": "ci-bot"})
    await w.svc("dev").promote("m", "v1.3.0", "production", reason="r")
    with pytest.raises(Refused, match="author"):
        await w.svc("sam").approve("m", "v1.3.0", "production")


async def test_gate_failure_refuses_the_request_and_records_the_attempt() -> None:
    w = World(approvals=0)
    with pytest.raises(Refused) as err:
        await w.svc("dev").promote("m", "v1.2.0", "production", reason="r")
    assert err.value.kind == "policy" and "CI failed" in err.value.message
    assert w.audit.actions() == [("promote", "refused")]
    assert w.registry.assign_calls == 0
    with pytest.raises(Refused, match=r"0\.050 worse"):  # v1.3.0: auc 0.85 vs 0.90 in production
        await w.svc("dev").promote("m", "v1.3.0", "production", reason="r")


async def test_read_only_and_viewer_refuse_every_action() -> None:
    w = World(approvals=0)
    with pytest.raises(Refused) as ro:
        await w.svc("dev", read_only=True).promote("m", "v1.1.0", "production", reason="r")
    assert ro.value.kind == "read_only"
    for call in ("promote", "approve", "reject"):
        with pytest.raises(Refused) as err:
            fn = getattr(w.svc("vic"), call)
            await (fn("m", "v1.1.0", "production", reason="r") if call == "promote"
                   else fn("m", "v1.1.0", "production"))  # fmt: skip
        assert err.value.kind == "role"
    with pytest.raises(Refused):
        await w.svc("vic").rollback("m", reason="r", confirmation="m")
    assert {(e.actor, e.result) for e in w.audit.rows} == {("vic", "refused")}
    assert w.registry.assign_calls == 0


async def test_cas_conflict_when_the_stage_moved_after_approval_changes_nothing() -> None:
    w = World(approvals=1)
    await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    # Between the approver's read and the registry write, someone else moves production.
    w.registry.before_assign = lambda: w.registry.move("production", "v1.3.0", "mallory")
    with pytest.raises(Refused) as err:
        await w.svc("rita").approve("m", "v1.1.0", "production")
    assert err.value.kind == "conflict" and "mallory" in err.value.message
    assert w.registry.pointers["production"] == "v1.3.0"
    assert w.audit.actions()[-2:] == [("intent", "pending"), ("outcome", "conflict")]


async def test_approval_refused_when_stage_moved_since_the_request() -> None:
    w = World(approvals=1)
    await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    w.registry.move("production", "v1.3.0", "mallory")
    with pytest.raises(Refused) as err:
        await w.svc("rita").approve("m", "v1.1.0", "production")
    assert err.value.kind == "conflict"
    again = await w.svc("dev").promote("m", "v1.1.0", "production", reason="again")
    assert again.status == "requested" and again.request and again.request["id"] == "req-0002"
    assert ("cancel", "cancelled") in w.audit.actions()


async def test_audit_unavailable_means_no_mutation() -> None:
    w = World(approvals=0)
    w.audit.broken = True
    with pytest.raises(ReleaseError, match="nothing was changed"):
        await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert w.registry.assign_calls == 0
    w2 = World(approvals=0)
    w2.audit.fail_after = 1  # the request is written, the intent is not
    with pytest.raises(ReleaseError, match="intent"):
        await w2.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert w2.registry.assign_calls == 0 and w2.registry.pointers["production"] == "v1.0.0"


async def test_outcome_write_failure_after_the_move_says_exactly_that() -> None:
    w = World(approvals=0)
    w.audit.fail_after = 2  # request + intent
    with pytest.raises(ReleaseError) as err:
        await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert "now points at v1.1.0" in err.value.message and "reconciled" in err.value.message
    assert "disk full)" in err.value.message
    assert "nothing was changed" not in err.value.message  # it did change: say only that
    assert w.registry.assign_calls == 1


async def test_timeout_reads_back_and_records_truth_without_retry() -> None:
    w = World(approvals=0, top="timeout_seconds = 0.05\n")
    svc = w.svc("dev")
    svc.write_timeout = 0.05
    w.registry.hang_assign, w.registry.apply_before_fail = True, True
    result = await svc.promote("m", "v1.1.0", "production", reason="r")
    assert result.status == "executed" and w.registry.assign_calls == 1
    outcome = next(e for e in w.audit.rows if e.action == "outcome")
    assert outcome.result == "executed"
    # The reason names the backend as configured (the embedded default: gto).
    assert "the registry backend gto did not answer within 0.05s" in outcome.reason

    w2 = World(approvals=0)
    w2.registry.fail_assign = Unreachable("git exploded")
    result2 = await w2.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert result2.status == "failed" and "still points at v1.0.0" in result2.message
    assert w2.registry.assign_calls == 1 and result2.exit_code == 1


async def test_unknown_outcome_leaves_the_intent_for_reconcile() -> None:
    w = World(approvals=0)
    w.registry.fail_assign = Unreachable("git exploded")
    w.registry.apply_before_fail = True
    w.registry.fail_reads = True
    svc = w.svc("dev")
    with pytest.raises(ReleaseError):  # the fresh read before the move already fails
        await svc.promote("m", "v1.1.0", "production", reason="r")

    w = World(approvals=0)
    w.registry.fail_assign = Unreachable("git exploded")
    w.registry.apply_before_fail = True
    original = w.registry.stages
    calls = {"n": 0}

    async def flaky(model):
        calls["n"] += 1
        if calls["n"] > 2:  # readable for context + fresh check, then down
            raise Unreachable("registry down")
        return await original(model)

    w.registry.stages = flaky  # type: ignore[method-assign]
    result = await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert result.status == "unknown" and "reconciled" in result.message
    assert [a for a, _ in w.audit.actions()] == ["request", "intent"]
    w.registry.stages = original  # type: ignore[method-assign]
    w.clock.advance(minutes=11)
    done = await w.svc("erin").reconcile()
    assert [(r.result, r.op) for r in done] == [("executed", "promote")]
    last = w.audit.rows[-1]
    assert (last.action, last.result, last.details["reconciled"]) == ("outcome", "executed", True)
    assert await w.svc("erin").reconcile() == []
    views = await w.svc("erin").request_views("m")
    assert views[0].state.value == "executed"


async def test_deploy_failure_is_reported_with_the_command_that_finishes_it() -> None:
    w = World(approvals=0, deploy=True)
    assert w.deployer is not None
    w.deployer.fail = Unreachable("kubectl: connection refused")
    result = await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert result.status == "deploy_failed" and result.exit_code == 1
    assert w.registry.pointers["production"] == "v1.1.0"
    assert "deploy effect failed" in result.message and "rollback" in result.message
    assert "promote m v1.1.0 --to production" in result.next_command
    assert w.audit.rows[-1].details["op"] == "deploy" and w.audit.rows[-1].result == "failed"
    w.deployer.fail = None
    retry = await w.svc("dev").promote("m", "v1.1.0", "production", reason="finish")
    assert retry.status == "executed" and len(w.deployer.calls) == 2
    assert w.registry.assign_calls == 1  # the registry move is never repeated
    again = await w.svc("dev").promote("m", "v1.1.0", "production", reason="noop")
    assert again.status == "already" and len(w.deployer.calls) == 2


async def test_evidence_binding_and_expiry_of_approvals() -> None:
    w = World(approvals=2, extra="")
    await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    plan = await w.svc("rita").plan_promotion("m", "v1.1.0", "production")
    assert plan.may_approve == ""
    with pytest.raises(Refused, match="evidence changed"):
        await w.svc("rita").approve("m", "v1.1.0", "production", evidence_hash="0" * 64)
    await w.svc("rita").approve("m", "v1.1.0", "production", evidence_hash=plan.evidence_hash)
    w.clock.advance(hours=25)  # default ttl 24 h
    result = await w.svc("erin").approve("m", "v1.1.0", "production")
    assert result.status == "pending"
    assert result.plan is not None
    why = {a.actor: a.why for a in result.plan.approvals}
    assert "expired" in why["rita"] and why["erin"] == ""


async def test_new_evidence_voids_the_request_and_its_approvals() -> None:
    """A request binds the evidence it was made on: approving other evidence is refused with
    both hashes, and requesting again starts afresh (the earlier approval no longer counts)."""
    w = World(approvals=2)
    first = await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    await w.svc("rita").approve("m", "v1.1.0", "production")
    w.data.by_commit[commit_of("v1.1.0")]["auc"] = 0.95  # the metrics file changed
    with pytest.raises(
        Refused, match=r"evidence changed since req-0001.*request \w{12}, now \w{12}"
    ):
        await w.svc("erin").approve("m", "v1.1.0", "production")
    assert w.registry.pointers["production"] == "v1.0.0"
    again = await w.svc("dev").promote("m", "v1.1.0", "production", reason="r, new metrics")
    assert again.request is not None and first.request is not None
    assert again.request["id"] == "req-0002" and again.request["approvals"] == []
    states = {v.id: v.state.value for v in await w.svc("dev").request_views("m")}
    assert states == {"req-0001": "cancelled", "req-0002": "pending"}


async def test_reject_and_withdraw() -> None:
    w = World(approvals=1)
    await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    rejected = await w.svc("rita").reject("m", "v1.1.0", "production", comment="not now")
    assert rejected.status == "rejected" and rejected.request
    assert rejected.request["state"] == "rejected"
    with pytest.raises(Refused, match="no pending request"):
        await w.svc("erin").approve("m", "v1.1.0", "production")
    await w.svc("dev").promote("m", "v1.1.0", "production", reason="again")
    withdrawn = await w.svc("dev").reject("m", "v1.1.0", "production", comment="oops")
    assert withdrawn.status == "cancelled"


WINDOW = """
[[policy.stages.production.windows]]
days = ["mon", "tue", "wed", "thu", "fri"]
start_hour = 9
end_hour = 17
timezone = "Europe/Berlin"
"""


async def test_change_window_refuses_and_admin_override_is_audited() -> None:
    w = World(approvals=0, extra=WINDOW)
    w.clock.now = w.clock.now.replace(hour=20)  # 21:00 in Berlin
    with pytest.raises(Refused, match="outside the change window"):
        await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    with pytest.raises(Refused) as err:
        await w.svc("dev").promote("m", "v1.1.0", "production", reason="r", override_window=True)
    assert err.value.kind == "role"
    result = await w.svc("erin").promote(
        "m", "v1.1.0", "production", reason="hotfix", override_window=True
    )
    assert result.status == "executed"
    override = next(e for e in w.audit.rows if e.action == "override" and e.result != "refused")
    assert override.actor == "erin" and "Europe/Berlin" in override.details["threshold"]


async def test_two_concurrent_approvers_only_one_moves() -> None:
    w = World(approvals=1)
    await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    results = await asyncio.gather(
        w.svc("rita").approve("m", "v1.1.0", "production"),
        w.svc("erin").approve("m", "v1.1.0", "production"),
        return_exceptions=True,
    )
    moves = [e for e in w.audit.rows if e.action == "outcome" and e.result == "executed"]
    assert len(moves) == 1 and w.registry.pointers["production"] == "v1.1.0"
    assert any(not isinstance(r, BaseException) and r.status == "executed" for r in results)

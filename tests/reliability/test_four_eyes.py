"""Four-eyes, as a hypothesis state machine over the release service (in-memory ports, the
real rules): several people request, approve, reject and promote versions into production
(two approvals required), time passes (approvals and requests expire), the stage is moved
behind the console's back, and people try to pass for someone else through USER, LOGNAME,
SUDO_USER and git's author name. After every step, for every promotion the registry shows:

- it was executed from a request, by the console, as the audit log records;
- at least two distinct people approved that exact version, none of them the requester or an
  author of the version, each in an approver role, each within the approval TTL;
- the stage still pointed where the request expected (compare-and-set).

And 200 generated cases where the stage moves after an approval are all refused.
"""

from __future__ import annotations

import asyncio
import pwd
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from console.domain import ModelVersion
from console.identity import current_actor, principal, role_of
from console.services.release import Refused, ReleaseError
from tests.release.fakes import World, commit_of

from .conftest import LONG

USERS = ["dev", "rita", "sam", "erin", "vic", "alice"]
VERSIONS = ["v1.1.0", "v1.2.0"]
AUTHORS = {"v1.0.0": "alice", "v1.1.0": "rita", "v1.2.0": "sam", "v1.3.0": "bob"}
APPROVER_ROLES = ("release_manager", "admin")
NOBODY = pwd.getpwnam("nobody")


def _world(approvals: int = 2) -> World:
    w = World(approvals=approvals)
    for v, author in AUTHORS.items():  # authors who are also release managers
        w.registry.vs[v] = ModelVersion(model="m", version=v, commit=commit_of(v),
                                        created_by=author)  # fmt: skip
    w.ci.failing = set()
    return w


async def _try(coro: Any) -> str:
    try:
        return (await coro).status
    except Refused as exc:
        return f"refused:{exc.kind}"
    except ReleaseError:
        return "error"


class FourEyes(RuleBasedStateMachine):
    """The machine; ``check`` holds the invariants."""

    @initialize()
    def setup(self) -> None:
        self.world = _world()
        self.external: list[tuple[int, str | None]] = []  # (hist index, version) moved outside
        self.run = asyncio.run

    @rule(user=st.sampled_from(USERS), version=st.sampled_from(VERSIONS))
    def request(self, user: str, version: str) -> None:
        self.run(_try(self.world.svc(user).promote("m", version, "production", reason="r")))

    @rule(user=st.sampled_from(USERS), version=st.sampled_from(VERSIONS))
    def approve(self, user: str, version: str) -> None:
        self.run(_try(self.world.svc(user).approve("m", version, "production", comment="ok")))

    @rule(version=st.sampled_from(VERSIONS), people=st.permutations(USERS))
    def request_then_two_approvals(self, version: str, people: list[str]) -> None:
        """The usual path, with people drawn at random (authors and viewers included)."""
        requester, first, second = people[:3]
        self.run(_try(self.world.svc(requester).promote("m", version, "production", reason="r")))
        for user in (first, second):
            self.run(_try(self.world.svc(user).approve("m", version, "production")))

    @rule(user=st.sampled_from(USERS), version=st.sampled_from(VERSIONS))
    def reject(self, user: str, version: str) -> None:
        self.run(_try(self.world.svc(user).reject("m", version, "production", comment="no")))

    @rule(hours=st.sampled_from([1, 23, 25, 170]))
    def time_passes(self, hours: int) -> None:
        self.world.clock.advance(hours=hours)

    @rule(version=st.sampled_from([*VERSIONS, "v1.0.0", None]))
    def someone_moves_the_stage(self, version: str | None) -> None:
        self.world.registry.move("production", version, actor="someone-else")
        self.external.append((len(self.world.registry.hist) - 1, version))

    @rule(user=st.sampled_from(USERS), spoof=st.sampled_from(["erin", "rita", "dev", "root"]),
          version=st.sampled_from(VERSIONS))  # fmt: skip
    def spoofed_identity(self, user: str, spoof: str, version: str) -> None:
        """An unprivileged process claiming to be ``spoof`` is still its own uid."""
        env = {"USER": spoof, "LOGNAME": spoof, "SUDO_USER": spoof, "GIT_AUTHOR_NAME": spoof,
               "GIT_COMMITTER_NAME": spoof, "SSH_CONNECTION": "192.0.2.9 1 192.0.2.1 22"}  # fmt: skip
        actor = current_actor(env, uid=NOBODY.pw_uid, euid=NOBODY.pw_uid)
        assert principal(actor) == "nobody" and actor.sudo_user is None
        assert actor == current_actor({"SSH_CONNECTION": env["SSH_CONNECTION"]},
                                      uid=NOBODY.pw_uid, euid=NOBODY.pw_uid)  # fmt: skip
        svc = self.world.svc(user)
        svc.identity = lambda: actor
        before = len(self.world.audit.rows)
        status = self.run(_try(svc.approve("m", version, "production", comment="spoof")))
        assert status == "refused:role", status
        assert all(e.actor == "nobody" for e in self.world.audit.rows[before:])

    @invariant()
    def every_move_was_approved_by_two_others(self) -> None:
        if not hasattr(self, "world"):
            return
        rows = self.world.audit.rows
        requests = {e.request_id: e for e in rows if e.action == "request"}
        for out in rows:
            if not (out.action == "outcome" and out.result == "executed"
                    and out.details.get("op") == "promote" and out.stage == "production"):  # fmt: skip
                continue
            req = requests[out.request_id]
            assert req.version == out.version
            assert out.before == (req.details.get("expected") or ""), "executed off expectation"
            valid = {
                a.actor for a in rows
                if a.action == "approve" and a.result != "refused"
                and a.request_id == req.request_id and a.seq < out.seq
                and a.version == req.version and a.actor != req.actor
                and a.actor != AUTHORS.get(req.version)
                and role_of(a.actor, self.world.config.roles) in APPROVER_ROLES
                and out.at - a.at <= timedelta(hours=24)
            }  # fmt: skip
            assert len(valid) >= 2, f"{out.request_id} executed with approvals {valid}"
        # Every move the registry shows by a console user has an executed outcome.
        executed = {(o.version, o.seq) for o in rows if o.action == "outcome"
                    and o.result == "executed" and o.stage == "production"}  # fmt: skip
        moves = [e for e in self.world.registry.hist if e.stage == "production"
                 and e.actor not in ("someone-else", "seed", "", None)]  # fmt: skip
        assert len(moves) <= len(executed), (moves, executed)


FourEyes.TestCase.settings = settings(
    max_examples=300 if LONG else 60,
    stateful_step_count=30 if LONG else 20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=not LONG,
)
TestFourEyes = FourEyes.TestCase


# -- the stage moves after an approval ------------------------------------------------------

CASES = 200


@pytest.mark.parametrize("batch", range(4))
async def test_the_stage_moving_after_approval_is_always_refused(batch: int) -> None:
    rng = random.Random(batch)
    refused = 0
    for _case in range(CASES // 4):
        approvals = rng.choice([1, 2])
        w = _world(approvals)
        version = rng.choice(["v1.1.0", "v1.2.0"])
        approvers = [u for u in ("dev", "erin", "sam", "rita") if u != AUTHORS[version]]
        requester = rng.choice(approvers)
        others = [u for u in approvers if u != requester]
        first, last = rng.sample(others, 2)
        res = await w.svc(requester).promote("m", version, "production", reason="r")
        assert res.status == "requested", res
        if (approvals == 2 or rng.random() < 0.5) and approvals == 2:
            assert (await w.svc(first).approve("m", version, "production")).status == "pending"
        moved_to = rng.choice([v for v in ("v1.2.0", "v1.1.0", "v1.3.0", None) if v != version
                               and v != "v1.0.0"])  # fmt: skip
        w.registry.move("production", moved_to, actor="mallory")
        before_rows, calls = len(w.audit.rows), w.registry.assign_calls
        with pytest.raises(Refused) as err:
            await w.svc(last).approve("m", version, "production", comment="late")
        assert err.value.kind == "conflict", err.value.message
        assert w.registry.pointers["production"] == moved_to
        assert w.registry.assign_calls == calls, "the registry was asked to move"
        assert not [e for e in w.audit.rows[before_rows:] if e.action == "intent"]
        refused += 1
    assert refused == CASES // 4

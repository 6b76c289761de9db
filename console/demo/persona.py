"""Demo colleagues: in a demo workspace, a release manager of the story can approve a request
you made, so that one person alone sees four-eyes end to end.

Only ever in a demo workspace (``console.config.demo_marker.is_demo_workspace``: the marker
and the demo's own first commit). The colleague acts through the ordinary release service, so every four-eyes
rule holds for it as for a person (not the requester, not an author, an approver role), and
each of its events records ``demo_persona_of``: the OS user who played it. The audit journal
refuses a persona's event in any workspace that is not a demo.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from console.config.demo_marker import is_demo_workspace
from console.demo.build import DemoError
from console.demo.story import PEOPLE, RELEASE_MANAGERS
from console.domain import Actor
from console.identity import principal

if TYPE_CHECKING:
    from console.services.release import ReleaseService

COLLEAGUES = RELEASE_MANAGERS  # the story's release managers: dev, then erin


def describe(handle: str) -> str:
    """'dev (Dev Patel, release manager)': who the colleague is in the story."""
    person = PEOPLE[handle]
    return f"{handle} ({person.name}, {person.role})"


def persona_identity(root: Path, handle: str, operator: Callable[[], Actor]) -> Callable[[], Actor]:
    """An identity provider acting as demo colleague ``handle``, played by ``operator()``'s
    person. It checks on every call that ``root`` is still a demo workspace."""
    if handle not in COLLEAGUES:
        raise DemoError(f"{handle!r} is not a demo colleague (those are {', '.join(COLLEAGUES)})")

    def actor() -> Actor:
        if not is_demo_workspace(root):
            raise DemoError(f"{root} is not a demo workspace: demo colleagues act only there")
        me = operator()
        return Actor(user=handle, ssh_client=me.ssh_client, demo_persona_of=principal(me))

    return actor


def colleague_service(base: ReleaseService, handle: str) -> ReleaseService:
    """A release service like ``base`` (same workspace, clock, anchor) acting as ``handle``;
    DemoError outside a demo workspace."""
    from console.services.release import ReleaseService

    root = base.config.root
    if not is_demo_workspace(root):
        raise DemoError(f"{root} is not a demo workspace: demo colleagues act only there")
    identity = persona_identity(root, handle, base.identity)
    return ReleaseService(
        base.ws,
        identity=identity,
        clock=base.clock,
        read_only=base.read_only,
        new_id=base.new_id,
        anchor=getattr(base, "_anchoring", None),  # a test's fake, too
    )


async def colleague_for(
    base: ReleaseService, model: str, version: str, stage: str
) -> tuple[str, ReleaseService]:
    """The first demo colleague who may approve the pending request, and a service acting as
    them; DemoError saying why when none may (or this is not a demo)."""
    why: list[str] = []
    for handle in COLLEAGUES:
        service = colleague_service(base, handle)
        plan = await service.plan_approval(model, version, stage)
        if not plan.may_approve:
            return handle, service
        why.append(f"{handle}: {plan.may_approve}")
    raise DemoError("no demo colleague may approve it (" + "; ".join(why) + ")")

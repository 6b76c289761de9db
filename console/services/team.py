"""What the team setting rests on, said where it matters (docs/team.md): the approve dialog and
``doctor`` name the limit of four-eyes on a SQLite audit store."""

from __future__ import annotations

from console.config import ConsoleConfig

SQLITE_STORES = frozenset({"sqlite-audit"})


def needs_approvals(config: ConsoleConfig) -> bool:
    """Whether the policy asks for approvals anywhere (a stage's promotions or rollbacks)."""
    policy = config.policy
    stages = [policy.for_stage(s) for s in config.stages]
    return (
        any(p.required_approvals > 0 for p in stages)
        or policy.rollback.required_approvals > 0
        or any(p.rollback is not None and p.rollback.required_approvals > 0 for p in stages)
    )


def four_eyes_caveat(config: ConsoleConfig) -> str:
    """One line when four-eyes rests on the audit file's permissions; "" otherwise."""
    audit = config.backend("audit")
    if audit is None or audit.type not in SQLITE_STORES or not needs_approvals(config):
        return ""
    return "four-eyes rests on file permissions here; teams: PostgreSQL (docs/team.md)"

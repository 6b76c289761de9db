"""services.release: policy gates, promotion requests and approvals, compare-and-set promotion,
rollback, the deploy effect and the fail-closed audit around them (docs/release.md)."""

from console.services.release.results import (
    ActionResult,
    ApprovalStatus,
    Plan,
    Reconciled,
    Refused,
    ReleaseError,
)
from console.services.release.service import ReleaseService

__all__ = [
    "ActionResult",
    "ApprovalStatus",
    "Plan",
    "Reconciled",
    "Refused",
    "ReleaseError",
    "ReleaseService",
]

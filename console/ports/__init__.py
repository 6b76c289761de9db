"""Ports: the protocols backends implement and the errors they raise."""

from console.ports.errors import (
    AuditUnavailable,
    BackendError,
    Conflict,
    Deprecated,
    InvalidResponse,
    NotFound,
    StageBusy,
    Unauthorized,
    Unreachable,
)
from console.ports.protocols import (
    KINDS,
    AuditStore,
    Backend,
    CIProvider,
    CodeRepo,
    DataVersions,
    Deployer,
    MetricsSource,
    ModelRegistry,
    Notifier,
)

__all__ = [
    "KINDS",
    "AuditStore",
    "AuditUnavailable",
    "Backend",
    "BackendError",
    "CIProvider",
    "CodeRepo",
    "Conflict",
    "DataVersions",
    "Deployer",
    "Deprecated",
    "InvalidResponse",
    "MetricsSource",
    "ModelRegistry",
    "NotFound",
    "Notifier",
    "StageBusy",
    "Unauthorized",
    "Unreachable",
]

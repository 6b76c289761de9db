"""Errors every backend raises: one hierarchy, each with a message a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.domain import AuditEvent


MAX_MESSAGE = 2000
"""Characters of an error's message: a sentence, never a pasted page."""


def _said(text: str, limit: int = MAX_MESSAGE) -> str:
    """A backend's words fit for a one-line message: one line, secrets masked, then cut."""
    from console.logs import (
        excerpt,  # console.logs reaches console.plugins.credentials: not at import
    )

    return excerpt(text, limit)


class BackendError(Exception):
    """A backend could not answer. ``str(err)`` is a sentence for a person; ``hint`` says what to do.

    Whatever a backend puts in ``message``, ``hint`` or ``backend`` (now or later) is stored as
    one line with control characters removed and secrets masked: it may quote a peer."""

    kind_label = "backend error"

    def __init__(self, message: str, *, backend: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.hint = hint

    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, text: str) -> None:
        self._message = _said(str(text))
        self.args = (self._message,)

    @property
    def hint(self) -> str:
        return self._hint

    @hint.setter
    def hint(self, text: str) -> None:
        self._hint = _said(str(text))

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, text: str) -> None:
        self._backend = _said(str(text), 200)

    def __str__(self) -> str:
        text = f"{self.backend}: {self.message}" if self.backend else self.message
        if self.hint:
            text += f" — {self.hint}"
        return text


class Unreachable(BackendError):
    """The peer did not answer (refused, DNS, timeout, missing file or repo)."""

    kind_label = "unreachable"


class Unauthorized(BackendError):
    """The peer refused our credentials (401/403) or none were found."""

    kind_label = "unauthorized"


class NotFound(BackendError):
    """The thing asked for does not exist (model, version, stage, commit)."""

    kind_label = "not found"


class InvalidResponse(BackendError):
    """The peer answered with something we cannot read (bad JSON, wrong shape, bad file)."""

    kind_label = "invalid response"


class Conflict(BackendError):
    """A compare-and-set failed: the target changed since it was read."""

    kind_label = "conflict"

    def __init__(
        self,
        message: str,
        *,
        backend: str = "",
        hint: str = "",
        expected: str | None = None,
        actual: str | None = None,
        changed_by: str = "",
    ) -> None:
        super().__init__(message, backend=backend, hint=hint)
        self.expected = expected
        self.actual = actual
        self.changed_by = changed_by


class StageBusy(Conflict):
    """The per-stage intent lock is held: an ``intent`` for the same (model, stage) has no
    ``outcome`` yet, so another writer is moving that stage (or crashed while doing so)."""

    kind_label = "stage busy"

    def __init__(
        self, message: str, *, intent: AuditEvent, backend: str = "", hint: str = ""
    ) -> None:
        super().__init__(
            message,
            backend=backend,
            hint=hint,
            actual=intent.after or None,
            changed_by=intent.actor,
        )
        self.intent = intent


class Deprecated(BackendError):
    """The model is retired in the registry (gto's ``@deprecated``): moving a stage would bring
    it back unnoticed, so that is refused until someone revives it on purpose."""

    kind_label = "deprecated"


class AuditUnavailable(BackendError):
    """The audit store can not be written; actions must fail closed."""

    kind_label = "audit unavailable"

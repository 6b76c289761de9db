"""The ``webhook`` notifier: one JSON POST to a Slack/Mattermost-compatible incoming webhook.

The body is the message itself; its ``text`` is one line, which such a webhook shows as is.
A secret part of the URL (``{token}``) is looked up like every credential and never shown:
messages name the URL with ``{token}`` in its place. Never retried (the caller bounds it).
"""

from __future__ import annotations

from typing import Any

import httpx

from console.logs import excerpt
from console.plugins import BackendContext
from console.plugins.credentials import (
    Credential,
    alookup,
    credential_name,
    redact_secrets,
    require,
)
from console.plugins.http import safe_url
from console.plugins.options import WebhookNotifyConfig
from console.ports import BackendError, InvalidResponse, Unreachable

TOKEN = "{token}"


class WebhookNotifier:
    """Notifier posting each message to ``config.url``."""

    name = "webhook"

    def __init__(self, config: WebhookNotifyConfig, ctx: BackendContext) -> None:
        self.config = config
        self.timeout = config.timeout_seconds
        self.events = frozenset(config.events) if config.events is not None else None
        self.where = safe_url(config.url) if TOKEN not in config.url else config.url
        self._credential: Credential | None = None
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout), follow_redirects=False
        )

    async def _url(self) -> str:
        if TOKEN not in self.config.url:
            return self.config.url
        if self._credential is None:
            name = credential_name(self.config, self.name)
            self._credential = require(await alookup(name, self.config, timeout=self.timeout))
        return self.config.url.replace(TOKEN, self._credential.secret.get_secret_value())

    def _masked(self, text: str) -> str:
        return redact_secrets(text, [self._credential])

    async def notify(self, message: dict[str, Any]) -> str:
        """POST ``message``; a non-2xx answer or no answer is a BackendError naming the URL."""
        if self.events is not None and message.get("event") not in self.events:
            return f"not sent: {message.get('event')} is not in backends.notify.events"
        try:
            resp = await self._client.post(await self._url(), json=message)
        except httpx.TimeoutException:
            raise Unreachable(
                f"{self.where} did not answer within {self.timeout:g}s",
                backend=self.name,
                hint="check the receiver, or raise backends.notify.timeout_seconds",
            ) from None
        except httpx.HTTPError as exc:
            raise Unreachable(
                f"{self.where} can not be reached: {self._masked(str(exc)) or type(exc).__name__}",
                backend=self.name,
                hint="check backends.notify.url",
            ) from None
        if not resp.is_success:
            body = excerpt(resp.text, mask_also=self._masked)  # masked, then cut
            raise InvalidResponse(
                f"{self.where} answered {resp.status_code} {resp.reason_phrase}"
                + (f": {body}" if body else ""),
                backend=self.name,
                hint="check the webhook (and its token: `cd4ml-console login webhook`)",
            )
        return f"sent to {self.where}"

    async def check(self) -> str:
        """Says where messages go; sends nothing (a test message would reach a real channel)."""
        try:
            await self._url()
        except BackendError:
            raise
        return f"posts to {self.where} within {self.timeout:g}s (nothing sent by doctor)"

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"WebhookNotifier({self.where!r})"

"""How messages name a backend: its kind, configured type and where it points — so a person
with several workspaces or peers can tell which one failed — never with a credential."""

from __future__ import annotations

from console.config import KIND_NAMES, ConsoleConfig
from console.logs import redact

# Options that say where a backend points, in the order a message names them (never a DSN:
# it may hold the password).
WHERE_OPTIONS = ("url", "api_url", "repository", "project", "path")
_URL_OPTIONS = frozenset({"url", "api_url"})
_MAX_WHERE = 120


def _shown(key: str, value: str) -> str:
    """One option value fit for a message: a URL without userinfo and query, one short line."""
    if key in _URL_OPTIONS or "://" in value:
        from console.plugins.http import safe_url

        value = safe_url(value.strip())
    else:
        value = redact(value)
    value = " ".join("".join(c if c.isprintable() else " " for c in value).split())
    return value if len(value) <= _MAX_WHERE else value[: _MAX_WHERE - 1] + "…"


def backend_label(config: ConsoleConfig | None, kind: str) -> str:
    """How a message names the ``kind`` backend: 'ci backend github-actions (https://host,
    acme/model)' — its kind, configured type and where it points, never a credential."""
    bcfg = config.backend(kind) if config is not None and kind in KIND_NAMES else None
    if config is None or bcfg is None:
        return f"{kind} backend"
    options = bcfg.options
    where = [
        _shown(k, v) for k in WHERE_OPTIONS if isinstance(v := options.get(k), str) and v.strip()
    ]
    label = f"{kind} backend {_shown('type', bcfg.type)}"
    label += f" ({', '.join(where)})" if where else ""
    return label

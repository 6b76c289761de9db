"""The placeholders a deploy effect's arguments may use, shared by every Deployer (the command
deployer, GitHub Actions inputs, GitLab variables): checked when the config is read, filled in
when the deploy runs."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

PLACEHOLDERS = ("model", "version", "stage", "actor")
_NAME = re.compile(r"\{(\w*)\}")


def check_templates(templates: Mapping[str, str] | Iterable[str]) -> None:
    """Raise ValueError naming any ``{placeholder}`` that is not one of PLACEHOLDERS."""
    items = templates.items() if isinstance(templates, Mapping) else enumerate(templates)
    for name, template in items:
        unknown = set(_NAME.findall(template)) - set(PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"{name}: unknown placeholder(s) {sorted(unknown)}; use "
                + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            )


def fill(template: str, model: str, version: str, stage: str, actor: str) -> str:
    """``template`` with every placeholder replaced (plain text substitution, no shell)."""
    for key, value in zip(PLACEHOLDERS, (model, version, stage, actor), strict=True):
        template = template.replace("{" + key + "}", value)
    return template

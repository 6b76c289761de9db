"""Shared by every test, the core's and the plugins': no credential remembered for masking is
carried from one test into the next (console.plugins.credentials masks every secret it has looked up)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_remembered_secrets() -> None:
    from console.plugins.credentials import forget_all

    forget_all()

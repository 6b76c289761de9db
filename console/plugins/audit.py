"""What an audit-store plugin builds on: the hash chain every store keeps and the export
every store offers (docs/audit.md). A store seals each event with :func:`seal` before it
writes it, reads records back through :func:`decode_record`, checks them with
:func:`verify_chain`, and gets ``export`` (JSON Lines, CSV) from :class:`ExportMixin`. The
chain's format (:data:`FORMAT`) is the same in every store, so a log moves between them."""

from __future__ import annotations

from console.audit.chain import (
    FORMAT,
    Anchor,
    EncodingError,
    StoredRecord,
    VerifyResult,
    decode_record,
    hash_bytes,
    seal,
    verify_chain,
)
from console.audit.export import ExportMixin

__all__ = [
    "FORMAT",
    "Anchor",
    "EncodingError",
    "ExportMixin",
    "StoredRecord",
    "VerifyResult",
    "decode_record",
    "hash_bytes",
    "seal",
    "verify_chain",
]

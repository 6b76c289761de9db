"""The tamper-evident audit log: canonical encoding and hash chain, head anchor, export."""

from console.audit.anchor import (
    ANCHOR_REF,
    advance_anchor,
    read_anchor,
    read_anchor_history,
    verify_anchored,
    write_anchor,
)
from console.audit.chain import (
    CHAIN_FIELDS,
    FORMAT,
    Anchor,
    EncodingError,
    Problem,
    StoredRecord,
    VerifyResult,
    canonical_bytes,
    compute_hash,
    decode_record,
    seal,
    verify_chain,
)
from console.audit.export import export_store, verify_jsonl, write_csv, write_jsonl

__all__ = [
    "ANCHOR_REF",
    "CHAIN_FIELDS",
    "FORMAT",
    "Anchor",
    "EncodingError",
    "Problem",
    "StoredRecord",
    "VerifyResult",
    "advance_anchor",
    "canonical_bytes",
    "compute_hash",
    "decode_record",
    "export_store",
    "read_anchor",
    "read_anchor_history",
    "seal",
    "verify_anchored",
    "verify_chain",
    "verify_jsonl",
    "write_anchor",
    "write_csv",
    "write_jsonl",
]

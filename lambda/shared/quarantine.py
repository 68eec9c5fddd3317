"""Recording a rejected upload: ``quarantine/<key>.reason.json`` beside nothing moved or deleted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sim2cloud import contract


def write_quarantine_record(s3: Any, bucket: str, record: Mapping[str, Any]) -> None:
    """Write ``record`` (built by :func:`sim2cloud.contract.quarantine_record`) for the object it names. The
    content is deterministic, so a repeated write for the same upload changes nothing."""
    s3.put_object(
        Bucket=bucket,
        Key=contract.quarantine_reason_key(str(record["key"])),
        Body=json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8"),
        ContentType="application/json",
    )

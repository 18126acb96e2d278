"""An HTTP answer of the payment-provider SIMULATOR, kept as data so an idempotent replay can repeat it exactly.

Why: a replay must return the first answer's status and body byte for byte, so the first answer is stored as a
value, not as a framework response object. Errors use RFC 9457 problem JSON like the rest of refstack.
See notes/fault_tolerance.md, "The payment-provider simulator".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclasses.dataclass(frozen=True)
class Reply:
    """Status, JSON body and headers of one answer."""

    status: int
    body: Mapping[str, Any]
    media_type: str = "application/json"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def replayed(self) -> Reply:
        """The same answer again, marked as a replay of the first one."""
        return dataclasses.replace(self, headers={**self.headers, REPLAYED_HEADER: "true"})

    def to_response(self) -> JSONResponse:
        return JSONResponse(
            dict(self.body), status_code=self.status, media_type=self.media_type, headers=dict(self.headers)
        )


def problem(status: int, title: str, detail: str, headers: Mapping[str, str] | None = None) -> Reply:
    """An RFC 9457 problem answer."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Reply(status, body, PROBLEM_JSON, headers or {})

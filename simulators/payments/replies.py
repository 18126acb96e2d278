"""An HTTP answer of the payment-provider SIMULATOR, kept as data so an idempotent replay can repeat it exactly.

Why: a replay must return the first answer's status and body byte for byte, so the first answer is stored as a
value, not as a framework response object (and garbling, when programmed, is applied to it on the way out, so a
replay after the garbling stops is correct). Errors use RFC 9457 problem JSON like the rest of refstack.
See notes/fault_tolerance.md, "The payment-provider simulator".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse, Response

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


def garbled(reply: Reply, how: str, huge_bytes: int) -> Response:
    """The answer as a broken provider sends it: same status and headers, a body refstack must not trust.

    ``huge`` is a well-formed charge carrying an extra ``padding`` field of ``huge_bytes``: a client that ignores
    unknown fields and reads everything would accept it; only a cap on the bytes it reads refuses it."""
    if how == "not_json":
        body = b"<html><body>502 Bad Gateway (upstream upgraded)</body></html>"
    elif how == "wrong_schema":
        body = json.dumps({"ok": True, "data": {"charge": dict(reply.body)}}).encode()
    else:
        padded = {**reply.body, "padding": "x" * huge_bytes}
        body = json.dumps(padded).encode()
    return Response(body, status_code=reply.status, media_type="application/json", headers=dict(reply.headers))

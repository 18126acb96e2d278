"""What a charge can come to: a result (succeeded or declined), or one of two errors.

Why a decline is a result and not an exception: a declined card is the provider working correctly and an
ordinary business outcome (the booking answers 402), so it never trips the breaker or triggers a retry. The errors
are for the cases where nobody knows or nobody can help: the provider is unavailable (retry later, 503 with
``Retry-After``) or refstack sent a request the provider refuses (a bug). See notes/fault_tolerance.md, "Retries".
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class ChargeResult:
    """The provider's final answer to one charge, and how many HTTP attempts it took to get it."""

    status: Literal["succeeded", "declined"]
    charge_id: str
    attempts: int
    decline_code: str | None = None
    replayed: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class PaymentUnavailable(Exception):
    """The provider could not be asked or did not answer usably; whether money moved is settled by the key.

    ``attempts`` is 0 when the circuit breaker refused the call without touching the network.
    """

    def __init__(self, *, retry_after_s: int, attempts: int, reason: str) -> None:
        super().__init__(f"payment provider unavailable ({reason}) after {attempts} attempt(s)")
        self.retry_after_s = retry_after_s
        self.attempts = attempts
        self.reason = reason

    @property
    def outcome_unknown(self) -> bool:
        """Requests were sent: the provider may have charged (retrying with the same key settles it)."""
        return self.attempts > 0


class PaymentRequestRejected(Exception):
    """The provider refused the request itself (a 4xx other than 402): a bug or a reused key, never retried."""

    def __init__(self, *, status: int, detail: str) -> None:
        super().__init__(f"payment provider rejected the request with {status}: {detail}")
        self.status = status
        self.detail = detail

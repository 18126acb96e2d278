"""The payment provider's wire shapes as refstack sends and expects them, validated with pydantic.

Why validate the provider's reply: an external service is input like any other. A body that is not a charge, or a
charge for another amount, must become a clean "provider unavailable" rather than a ``KeyError`` halfway through a
booking; every string we keep is bounded, and the client reads at most ``payments_max_reply_bytes`` before
validating. See notes/fault_tolerance.md, "Idempotency keys", and notes/security.md, "Unsafe consumption of APIs".
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ChargeRequest(BaseModel):
    """Body of ``POST /v1/charges``. The same idempotency key must always carry the same body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount_cents: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    card_token: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=500)


class ProviderCharge(BaseModel):
    """The charge in a 201 or 402 answer; fields refstack does not use are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=255)
    status: Literal["succeeded", "declined"]
    amount_cents: int
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    decline_code: str | None = Field(default=None, max_length=100)

    def answers(self, request: ChargeRequest, http_status: int) -> bool:
        """Whether this is a charge for ``request`` with the status its HTTP status promises."""
        expected = {201: "succeeded", 402: "declined"}.get(http_status)
        return (
            self.status == expected
            and self.amount_cents == request.amount_cents
            and self.currency.upper() == request.currency
        )


class ProviderNotFound(BaseModel):
    """The provider's RFC 9457 "no such charge" (404) to a lookup by idempotency key; anything else is no answer."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal[404]
    title: str = Field(max_length=200)

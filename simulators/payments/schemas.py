"""The payment-provider SIMULATOR's wire shapes: the charge request it accepts and the charge it records.

Why here: these are the provider's contract that refstack's payment client will be written against (amounts in
integer cents, ISO currency codes, one charge per idempotency key). See notes/fault_tolerance.md,
"The payment-provider simulator".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ChargeRequest(BaseModel):
    """Body of ``POST /v1/charges``; two requests are "the same" when their validated fields are equal."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    amount_cents: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    card_token: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=500)

    @field_validator("currency")
    @classmethod
    def _upper_case_code(cls, currency: str) -> str:
        return currency.upper()


class Charge(BaseModel):
    """A charge the simulator recorded, declined ones included (they have an id, like at a real provider)."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: Literal["succeeded", "declined"]
    amount_cents: int
    currency: str
    created_at: datetime
    description: str | None = None
    decline_code: Literal["card_declined"] | None = None
    idempotency_key: str

    def public_view(self) -> dict[str, Any]:
        """What the provider API shows: no idempotency key, no empty fields."""
        return self.model_dump(mode="json", exclude={"idempotency_key"}, exclude_none=True)

"""The reconciler's Redis lease outlasts a renewal that times out (notes/redis.md, "A lease with fencing tokens")."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_the_lease_must_outlast_three_redis_timeouts_when_the_reconciler_runs() -> None:
    assert Settings().reconciler_lease_ttl_s >= 3 * Settings().redis_timeout_s
    with pytest.raises(ValidationError, match="RECONCILER_LEASE_TTL_S"):
        Settings(reconciler_lease_ttl_s=2.9, redis_timeout_s=1.0)
    assert (
        Settings(reconciler_lease_ttl_s=2.9, redis_timeout_s=1.0, reconciler_enabled=False).reconciler_enabled is False
    )

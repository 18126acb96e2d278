"""One settings object for the whole service, read from ``REFSTACK_*`` environment variables.

Why one object: every knob that changes behaviour between a laptop, a test run and production lives here and is
validated at boot, so a misconfigured process refuses to start instead of failing at its first request. Nothing
reads the environment anywhere else, and nothing builds a ``Settings`` at import time: ``create_app`` receives
one (see notes/fastapi.md and notes/docker.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AmqpDsn, Field, HttpUrl, PostgresDsn, RedisDsn
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration; every field maps to ``REFSTACK_<FIELD_NAME>``."""

    model_config = SettingsConfigDict(env_prefix="REFSTACK_", extra="ignore", frozen=True)

    env: Literal["demo", "test", "production"] = "demo"

    database_url: PostgresDsn = PostgresDsn("postgresql+asyncpg://app:app@127.0.0.1:55432/refstack")
    replica_url: PostgresDsn | None = None
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:56379/0")
    amqp_url: AmqpDsn = AmqpDsn("amqp://guest:guest@127.0.0.1:55672/")
    payments_url: HttpUrl = HttpUrl("http://127.0.0.1:58090")
    elasticsearch_url: HttpUrl | None = None

    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_connect_timeout_s: float = Field(default=1.0, gt=0)
    db_command_timeout_s: float = Field(default=5.0, gt=0)
    db_pool_timeout_s: float = Field(default=2.0, gt=0)
    redis_timeout_s: float = Field(default=1.0, gt=0)
    amqp_timeout_s: float = Field(default=2.0, gt=0)
    amqp_reconnect_interval_s: float = Field(default=5.0, gt=0)
    health_check_timeout_s: float = Field(default=1.0, gt=0, le=1.0)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True

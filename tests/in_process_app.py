"""The app in-process, lifespan included, served the way uvicorn serves it: each request gets a shallow copy of
the lifespan state. Shared by tests/unit/test_app_http.py and tests/integration/test_pgbouncer.py, so no test
imports another test module. See notes/fastapi.md, "App factory and lifespan".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from app.main import create_app
from app.settings import Settings
from app.state import AppState


@dataclass
class Running:
    app: FastAPI
    state: AppState
    client: httpx.AsyncClient


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Running]:
    """Enter the lifespan, then serve like uvicorn does: each request gets a shallow copy of the lifespan state."""
    app = create_app(settings)
    async with app.router.lifespan_context(app) as yielded:
        state = cast(AppState, yielded)

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(state)}, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://refstack.test") as client:
            yield Running(app=app, state=state, client=client)

"""What a route needs, said as a type: ``StateDep``, ``SettingsDep`` (more join as resources arrive).

Why ``Annotated`` aliases: a route names what it needs and one override in a test reaches every route. They read
the lifespan state from the request scope, so nothing here holds a client. See notes/fastapi.md,
"App factory and lifespan".
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from app.settings import Settings
from app.state import AppState


async def app_state(request: Request) -> AppState:
    """The server's per-request copy of what the lifespan yielded."""
    return cast(AppState, request.scope["state"])


StateDep = Annotated[AppState, Depends(app_state)]


async def settings(state: StateDep) -> Settings:
    return state["settings"]


SettingsDep = Annotated[Settings, Depends(settings)]

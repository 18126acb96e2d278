"""Background loops that live exactly as long as the app's lifespan (the hold sweeper, the replica health check).

Why one helper: a loop started in the lifespan must be cancelled and awaited on the way out, or shutdown leaves a
task running against closed pools. See notes/fastapi.md, "App factory and lifespan".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from typing import Any


@asynccontextmanager
async def running_in_background(loop: Coroutine[Any, Any, None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``loop`` as a task for the duration of the ``async with``; cancel it and wait for it on exit."""
    task = asyncio.create_task(loop, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

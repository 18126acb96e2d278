"""A task nobody references can be collected mid-flight; keeping a reference (a set, or a TaskGroup) fixes it.

Why: the event loop keeps only weak references to tasks (asyncio's docs say to save the result of
``create_task``). A pending task stays alive only through what will wake it: a timer, a selector callback, a future
someone holds. When that waker is itself reachable only from the task (here a dispatcher that holds pending
replies weakly, so that an abandoned request cannot leak), task, coroutine and future form a cycle that nothing
reaches, and the next ``gc.collect()`` destroys it: its ``finally`` runs, the loop logs "Task was destroyed but it
is pending!", and the reply finds no one. Shown deterministically with an explicit ``gc.collect()``.
See notes/python.md.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from dataclasses import dataclass, field
from typing import Any, Literal

from lab.table import Table

Keeper = Literal["nothing", "a set of tasks", "a TaskGroup"]
KEEPERS: tuple[Keeper, ...] = ("nothing", "a set of tasks", "a TaskGroup")


class Replies:
    """Pending requests by id, each a future held weakly: whoever awaits it keeps it alive."""

    def __init__(self) -> None:
        self.pending: weakref.WeakValueDictionary[int, asyncio.Future[str]] = weakref.WeakValueDictionary()

    def expect(self, request_id: int) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        return future

    def deliver(self, request_id: int, reply: str) -> bool:
        future = self.pending.get(request_id)
        if future is None:
            return False
        future.set_result(reply)
        return True


@dataclass
class Outcome:
    kept_by: Keeper
    delivered: bool = False
    results: list[str] = field(default_factory=list)
    cleanups: int = 0
    loop_errors: list[str] = field(default_factory=list)


async def request(replies: Replies, registered: asyncio.Event, outcome: Outcome) -> None:
    try:
        reply = replies.expect(1)
        registered.set()
        outcome.results.append(await reply)
    finally:
        outcome.cleanups += 1


async def scenario(kept_by: Keeper) -> Outcome:
    """Start the request, collect garbage while it waits, then deliver its reply."""
    outcome = Outcome(kept_by)

    def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        outcome.loop_errors.append(str(context["message"]))

    asyncio.get_running_loop().set_exception_handler(record)
    replies, registered = Replies(), asyncio.Event()
    if kept_by == "a TaskGroup":
        async with asyncio.TaskGroup() as group:
            group.create_task(request(replies, registered, outcome))
            await registered.wait()
            gc.collect()
            outcome.delivered = replies.deliver(1, "seat 7 held")
        return outcome
    running: set[asyncio.Task[None]] = set()
    task = asyncio.create_task(request(replies, registered, outcome))
    if kept_by == "a set of tasks":
        running.add(task)
        task.add_done_callback(running.discard)
    del task
    await registered.wait()
    gc.collect()
    outcome.delivered = replies.deliver(1, "seat 7 held")
    for pending in list(running):
        await pending
    return outcome


def run(kept_by: Keeper) -> Outcome:
    return asyncio.run(scenario(kept_by))


def report() -> list[Table]:
    rows = [
        (o.kept_by, str(o.delivered), ", ".join(o.results) or "-", o.cleanups, "; ".join(o.loop_errors) or "-")
        for o in map(run, KEEPERS)
    ]
    return [
        Table(
            "a task awaiting a weakly held reply, gc.collect() while it waits, then the reply",
            ("task referenced by", "reply delivered", "task's result", "finally ran", "loop's exception handler"),
            rows,
        )
    ]

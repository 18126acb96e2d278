"""Extra private PostgreSQL primaries that serve as shards, started side by side and torn down by recorded PID.

Why outside ``NativeStack``: the app does not use shards, so ``make up`` stays lean; the sharding tests and
``python -m bench.sharding`` start their own ``ShardSet`` and can add a shard while it runs (the resharding step).
Each shard is a full ``PostgresPrimary`` (same roles, same ``refstack`` database) named ``shard_<n>``, in its own
folder under ``refstack-shards-*`` with a recorded owner, so a killed test run's shards are reaped the same way the
main stack's are: only PIDs whose start time still matches. Shards are reached directly (no fault proxy).
See notes/db_scaling.md, "Sharding".
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from stack.native.layout import Layout, free_port
from stack.native.postgres import PostgresPrimary
from stack.native.process import start_time

PREFIX = "refstack-shards-"
STATE_FILE = "shards.json"


class ShardPrimary(PostgresPrimary):
    """A primary whose name (folder, log, port key) is ``shard_<n>`` instead of ``postgres``."""

    proxied = False

    def __init__(self, layout: Layout, name: str) -> None:
        self.name = name
        super().__init__(layout)


class ShardSet:
    """N shard primaries in one private folder; ``add`` starts more while the others keep running."""

    def __init__(self, layout: Layout | None = None, owner: list[int | None] | None = None) -> None:
        if layout is None:
            base = Path(tempfile.mkdtemp(prefix=PREFIX))
            base.chmod(0o711)  # the postgres user must traverse it
            layout = Layout(base)
        self.layout = layout
        self.owner = owner if owner is not None else [os.getpid(), start_time(os.getpid())]
        self.shards: dict[str, ShardPrimary] = {name: ShardPrimary(layout, name) for name in layout.ports}

    def __enter__(self) -> ShardSet:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def state_path(self) -> Path:
        return self.layout.base / STATE_FILE

    def add(self, count: int = 1) -> list[ShardPrimary]:
        """Start ``count`` new shards in parallel (initdb and boot wait on processes, not on the GIL)."""
        added = []
        for _ in range(count):
            name = f"shard_{len(self.shards)}"
            self.layout.ports[name] = free_port()
            self.shards[name] = ShardPrimary(self.layout, name)
            added.append(self.shards[name])
        try:
            with ThreadPoolExecutor(max_workers=len(added)) as pool:
                for future in [pool.submit(shard.start) for shard in added]:
                    future.result()
        finally:
            self.save_state()
        return added

    def urls(self) -> dict[str, str]:
        """``postgresql://`` DSN of each shard's ``refstack`` database, by shard name."""
        return {name: shard.direct_url for name, shard in self.shards.items()}

    def close(self) -> None:
        for shard in self.shards.values():
            shard.close()
        shutil.rmtree(self.layout.base, ignore_errors=True)

    def save_state(self) -> None:
        processes = {
            name: [shard.process.pid, start_time(shard.process.pid)] if shard.process.pid is not None else None
            for name, shard in self.shards.items()
        }
        state = {"owner": self.owner, "layout": self.layout.to_json(), "processes": processes}
        self.state_path.write_text(json.dumps(state, indent=2))

    @classmethod
    def from_state(cls, path: Path) -> ShardSet:
        """Rebuild a shard set another process started, adopting only PIDs whose start time still matches."""
        state = json.loads(path.read_text())
        shard_set = cls(Layout.from_json(state["layout"]), owner=state["owner"])
        for name, shard in shard_set.shards.items():
            pid, started = state["processes"].get(name) or (None, None)
            shard.process.adopt(pid if pid is not None and start_time(pid) == started else None)
        return shard_set


def reap_orphaned_shards() -> list[Path]:
    """Tear down every shard set whose recorded owner is gone (a SIGKILLed test run); return their folders."""
    reaped = []
    for state_file in Path(tempfile.gettempdir()).glob(f"{PREFIX}*/{STATE_FILE}"):
        try:
            owner = json.loads(state_file.read_text())["owner"]
        except (OSError, ValueError, KeyError):
            continue
        if start_time(owner[0]) != owner[1]:
            ShardSet.from_state(state_file).close()
            reaped.append(state_file.parent)
    return reaped

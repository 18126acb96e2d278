"""Step 2: a root filesystem as an overlay: a read-only lower layer (the image), a writable upper (the container).

The lab builds a tiny image in a temp dir (the host's /bin/sh, cat and rm with the libraries `ldd` names, and a
few files), mounts lower + upper as overlayfs in a private mount namespace, and runs the image's own /bin/sh
chrooted into the merged view. Writing to a file of the image copies it up whole into the upper layer and leaves
the lower untouched; a new file exists only in the upper; deleting a file of the image leaves a whiteout in the
upper, a character device 0/0, because the lower is never written. That upper directory is what `docker diff`
lists and what `docker commit` turns into a layer. The mount dies with its namespace; the temp dir is removed.
See notes/docker.md.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.container.namespaced_process import NamespacedProcess, workload
from lab.container.refusal import KernelRefusedError
from lab.table import Table

PROGRAMS = ("/bin/sh", "/bin/cat", "/bin/rm")
IMAGE_FILES = {
    "etc/hostname": "lab-container\n",
    "etc/motd": "built into the image\n",
    "var/log/old.log": "a log the image shipped\n",
}


@dataclass(frozen=True)
class LayerEntry:
    path: str
    kind: str  # "file", "whiteout (char 0/0)", ...


@dataclass(frozen=True)
class OverlaySeen:
    container: dict[str, Any]
    lower_files: list[str]
    upper: list[LayerEntry]
    lower_motd: str
    upper_motd: str
    lower_still_has_deleted_file: bool
    mounts_left: int

    def table(self) -> Table:
        rows: list[tuple[str | int, ...]] = [
            ("files in the image (lower layer)", len(self.lower_files)),
            ("files the container sees (merged)", len(self.container["merged_files"])),
            ("the container's shell said", self.container["shell_output"]),
            *((f"upper: {entry.path}", entry.kind) for entry in self.upper),
            ("lower etc/motd after the write", self.lower_motd.strip()),
            ("upper etc/motd (copied up, then written)", self.upper_motd.strip().replace("\n", " | ")),
            ("lower var/log/old.log after rm", "still there" if self.lower_still_has_deleted_file else "gone"),
            ("overlay mounts left on the host", self.mounts_left),
        ]
        return Table("overlay: image layer + container layer = the container's /", ("", "measured"), rows)


def shared_libraries(program: str) -> list[str]:
    """The absolute paths `ldd` names for ``program`` (the loader and libc for the programs used here)."""
    listed = subprocess.run(["ldd", program], capture_output=True, text=True, check=True, timeout=10).stdout
    return [word for line in listed.splitlines() for word in line.split() if word.startswith("/")]


def build_image(lower: Path) -> None:
    """A lower layer that is a root filesystem: three programs, the libraries they load, a few files."""
    for program in PROGRAMS:
        for path in [program, *shared_libraries(program)]:
            target = lower / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)  # follows symlinks: /bin/sh -> dash is copied as the file itself
    for name, text in IMAGE_FILES.items():
        (lower / name).parent.mkdir(parents=True, exist_ok=True)
        (lower / name).write_text(text)


def describe(entry: Path) -> str:
    mode = entry.lstat()
    if stat.S_ISCHR(mode.st_mode):
        return f"whiteout (char {os.major(mode.st_rdev)}/{os.minor(mode.st_rdev)})"
    return "directory" if stat.S_ISDIR(mode.st_mode) else "file"


def overlay_mounts_under(base: Path) -> int:
    return sum(str(base) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())


def run() -> OverlaySeen:
    base = Path(tempfile.mkdtemp(prefix="refstack-lab-overlay-"))
    try:
        for layer in ("lower", "upper", "work", "merged"):
            (base / layer).mkdir()
        build_image(base / "lower")
        with NamespacedProcess(workload("overlay", str(base))) as pid_1:
            container = json.loads(pid_1.read_line(timeout_s=15))
        if "refused" in container:
            raise KernelRefusedError(container["refused"])
        lower, upper = base / "lower", base / "upper"
        return OverlaySeen(
            container=container,
            lower_files=sorted(str(p.relative_to(lower)) for p in lower.rglob("*") if not p.is_dir()),
            upper=[
                LayerEntry(str(p.relative_to(upper)), describe(p)) for p in sorted(upper.rglob("*")) if not p.is_dir()
            ],
            lower_motd=(lower / "etc/motd").read_text(),
            upper_motd=(upper / "etc/motd").read_text(),
            lower_still_has_deleted_file=(lower / "var/log/old.log").exists(),
            mounts_left=overlay_mounts_under(base),
        )
    finally:
        shutil.rmtree(base)

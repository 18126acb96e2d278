"""``/docs`` rendered by a real browser through Nginx, offline and under its CSP: every operation of the OpenAPI
3.1 document is listed in the DOM after Swagger UI's script ran, and the screenshot is kept for a person to see.

Headless Chromium (Debian's ``chromium``; ``make test`` installs it) runs its own CLI: ``--dump-dom`` after
``--virtual-time-budget`` lets the page's scripts finish, ``--screenshot`` keeps the picture in
``test-artifacts/`` (ignored by git). Serving the files is not enough: Swagger UI 4 served them fine and showed
only "Unable to render this definition" for a 3.1 document. See notes/security.md, "Headers, CORS and docs".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stack.native.stack import NativeStack
from tests.probes import http

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
BROWSER = "chromium"
OPERATION = re.compile(r'class="opblock opblock-(\w+)".*?data-path="([^"]+)"', re.DOTALL)


def headless(profile: Path, *options: str, url: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run, offline by construction (only our loopback URL) and with a throwaway profile."""
    program = shutil.which(BROWSER)
    if program is None:
        pytest.fail(f"{BROWSER} is missing: `make test` installs it (stack/install-debian-packages.sh test)")
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses to sandbox itself as root
    return subprocess.run(
        [
            program,
            "--headless",
            *sandbox,
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",  # virtual time: the page's scripts and fetches finish before the dump
            *options,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )


def test_a_browser_lists_every_operation_on_the_docs_page(stack: NativeStack, tmp_path: Path) -> None:
    document = json.loads(http("GET", f"{stack.nginx.url}/openapi.json")[2])
    assert document["openapi"].startswith("3.1")
    operations = {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}

    dom = headless(tmp_path / "profile", "--dump-dom", url=f"{stack.nginx.url}/docs").stdout
    assert "Unable to render" not in dom
    assert "OAS 3.1" in dom  # Swagger UI read the document's version
    rendered = [(method.upper(), path) for method, path in OPERATION.findall(dom)]
    assert len(rendered) == len(operations)  # each once
    assert set(rendered) == operations

    ARTIFACTS.mkdir(exist_ok=True)
    picture = ARTIFACTS / "docs.png"
    picture.unlink(missing_ok=True)
    headless(tmp_path / "profile", f"--screenshot={picture}", "--window-size=1280,2400", url=f"{stack.nginx.url}/docs")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

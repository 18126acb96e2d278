"""Small probes the integration and fault tests share: plain HTTP and readiness (polling is tests/polling.py).

Why plain urllib: the probe must not share a connection pool or retry policy with anything under test.
See notes/fault_tolerance.md.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import httpx

from stack.native.stack import NativeStack


def http(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None, timeout_s: float = 10.0
) -> tuple[int, Mapping[str, str], bytes]:
    """A plain HTTP call that returns errors as values: (status, headers, body); header names are case-insensitive."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, httpx.Headers(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, httpx.Headers(error.headers.items()), error.read()


def ready(stack: NativeStack) -> tuple[int, dict[str, Any], float]:
    """GET /health/ready through Nginx: status, parsed JSON and how long it took."""
    began = time.monotonic()
    status, _, body = http("GET", f"{stack.nginx.url}/health/ready")
    return status, json.loads(body), time.monotonic() - began

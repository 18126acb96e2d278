"""The front door through Nginx: ``/`` is the static page under the security headers, and the JSON index (at
``/api/v1``, or ``/`` asked for JSON) lists exactly the documented API, every plain link of which answers.

See notes/rest_design.md ("Entry point") and notes/security.md ("Headers, CORS and docs").
"""

from __future__ import annotations

import json

import httpx

from app.api.entry_point import LANDING_PAGE
from stack.native.stack import NativeStack
from tests.probes import http

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def test_the_root_is_the_landing_page_under_the_security_headers(stack: NativeStack) -> None:
    status, received, body = http("GET", f"{stack.nginx.url}/", headers={"Accept": "text/html,*/*;q=0.8"})
    headers = httpx.Headers(received)
    assert (status, headers["Content-Type"], body) == (200, "text/html; charset=utf-8", LANDING_PAGE.read_bytes())
    for name, value in SECURITY_HEADERS.items():
        assert headers.get_list(name) == [value], name
    [policy] = headers.get_list("Content-Security-Policy")  # the page's own; the edge added no second one
    assert policy.startswith("default-src 'none'; style-src 'sha256-")
    assert "script-src" not in policy


def test_the_index_lists_the_documented_api_and_its_plain_links_answer(stack: NativeStack) -> None:
    status, received, body = http("GET", f"{stack.nginx.url}/api/v1")
    assert (status, httpx.Headers(received)["Content-Type"]) == (200, "application/json")
    index = json.loads(body)
    assert http("GET", f"{stack.nginx.url}/", headers={"Accept": "application/json"})[2] == body

    document = json.loads(http("GET", f"{stack.nginx.url}{index['links']['openapi']['href']}")[2])
    documented = {(path, method.upper()) for path, operations in document["paths"].items() for method in operations} - {
        ("/api/v1", "GET")
    }
    listed = {(resource["href"], method) for resource in index["resources"] for method in resource["methods"]}
    assert listed == {(path, method) for path, method in documented if path.startswith("/api/v1/")}
    assert all(resource["templated"] == ("{" in resource["href"]) for resource in index["resources"])

    plain_gets = [r["href"] for r in index["resources"] if "GET" in r["methods"] and not r["templated"]]
    assert "/api/v1/events" in plain_gets
    for href in plain_gets:  # no token: a public list answers 200, a private one 401; none is missing
        required = [p for p in document["paths"][href]["get"].get("parameters", []) if p.get("required")]
        # a route that needs a query (search needs q) names it in a 422 instead
        assert http("GET", f"{stack.nginx.url}{href}")[0] in ((422,) if required else (200, 401)), href
    assert http("GET", f"{stack.nginx.url}{index['links']['docs']['href']}")[0] == 200

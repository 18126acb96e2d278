"""``/docs`` that works offline: Swagger UI's own files served by the app, under a CSP that allows only them.

Why not FastAPI's default: it loads Swagger UI's JavaScript and CSS from a public CDN, so the docs break without
internet and every visitor's browser runs whatever that CDN serves. The files are Swagger UI 5 (the first to read
the OpenAPI 3.1 FastAPI writes), vendored unchanged in ``app/api/swagger_ui/`` (its VENDORED.txt names the npm
package, version and integrity) and mounted at ``/docs/assets``. The page's one inline
script (the ``SwaggerUIBundle({...})`` call FastAPI writes) is allowed by its SHA-256 hash, computed from the page
we render once at start-up, so ``script-src`` needs no ``'unsafe-inline'``. See notes/security.md, "Headers, CORS
and docs".
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
SWAGGER_UI_DIR = Path(__file__).with_name("swagger_ui")
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def csp_hash(inline: bytes) -> str:
    """The CSP source that lets exactly this inline ``<script>`` or ``<style>`` body run, and nothing else."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(inline).digest()).decode()}'"


def docs_csp(page: bytes) -> str:
    """The docs page's policy: its own assets, its inline scripts by hash, API calls to its own origin only.

    ``style-src 'unsafe-inline'``: Swagger UI sets ``style`` attributes from its React components; inline styles
    cannot run code, so this is the usual concession (scripts stay hash-pinned)."""
    hashes = " ".join(csp_hash(script) for script in _INLINE_SCRIPT.findall(page))
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def install_offline_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets from this process; build the app with ``docs_url=None, redoc_url=None``."""
    if app.openapi_url is None:
        raise ValueError("offline docs need the OpenAPI schema route")
    app.mount(ASSETS_PATH, StaticFiles(directory=SWAGGER_UI_DIR), name="docs-assets")
    page = bytes(
        get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},  # the default badge calls validator.swagger.io
        ).body
    )
    policy = docs_csp(page)

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": policy})

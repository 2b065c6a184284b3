"""`GET /docs` without a network: Swagger UI from a package, under a strict Content-Security-Policy.

FastAPI's own docs page loads Swagger UI from a CDN, so offline (or behind a firewall) it is
blank. Here the page loads the copy that the `fastapi-offline` package ships
(`fastapi_offline/static`: swagger-ui-bundle.js, swagger-ui.css, favicon.png), served by this
app under `STATIC` (no API key needed, like the page itself; nothing else there is served).

The page's policy allows scripts, styles and images from this server only, plus the page's own
inline `<script>` by its hash (FastAPI's page writes one that starts Swagger UI), and requests
to this server only (the schema, and "Try it out"); no eval, no inline style, no frames.

There is no /redoc: ReDoc's bundle always loads its logo from the vendor's CDN and writes
inline `<style>` elements, which this policy refuses; Swagger UI shows the same schema.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

STATIC = "/static/swagger"
"""Where Swagger UI's files are served."""
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
"""The files of `assets_dir()` served under `STATIC` (each open without the API key)."""
DOCS, OAUTH2_REDIRECT = "/docs", "/docs/oauth2-redirect"


def assets_dir() -> Path:
    """The folder of Swagger UI files that the `fastapi-offline` package ships."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _hash(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode() + "'"


def secured(page: HTMLResponse) -> HTMLResponse:
    """`page` with a CSP allowing this server's files and the page's own inline scripts (by hash), nothing else."""
    html = page.body.decode("utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, flags=re.S)
    policy = "; ".join([
        "default-src 'none'",
        "script-src " + " ".join(["'self'", *map(_hash, scripts)]),
        "style-src " + " ".join(["'self'", *map(_hash, styles)]),
        "img-src 'self' data:",  # Swagger UI's icons are data: URLs in its CSS
        "connect-src 'self'",  # the schema and "Try it out"
        "base-uri 'none'",
        "form-action 'none'",  # Swagger UI's forms (Authorize) are handled by its script
        "frame-ancestors 'none'",
    ])
    headers = {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Cache-Control": "no-cache"}
    return HTMLResponse(html, headers=headers)


class _Assets(StaticFiles):
    """StaticFiles for `ASSETS` only (anything else is a 404), with `X-Content-Type-Options: nosniff`."""

    def lookup_path(self, path: str):
        return super().lookup_path(path) if path in ASSETS else ("", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_nosniff(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        await super().__call__(scope, receive, send_nosniff)


def add_docs(app: FastAPI) -> frozenset[str]:
    """Serve /docs, its OAuth2 redirect and Swagger UI's files from this app; the app must be built with
    `docs_url=None, redoc_url=None`. Returns the paths to leave open without the API key (with /openapi.json)."""
    app.mount(STATIC, _Assets(directory=assets_dir()), name="swagger-static")

    def root(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return secured(get_swagger_ui_html(
            openapi_url=base + app.openapi_url, title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=base + OAUTH2_REDIRECT, swagger_ui_parameters=app.swagger_ui_parameters,
            swagger_js_url=f"{base}{STATIC}/swagger-ui-bundle.js", swagger_css_url=f"{base}{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{base}{STATIC}/favicon.png"))

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return secured(get_swagger_ui_oauth2_redirect_html())

    return frozenset({DOCS, OAUTH2_REDIRECT, app.openapi_url, *(f"{STATIC}/{name}" for name in ASSETS)})

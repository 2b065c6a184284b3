"""`GET /docs` and `GET /redoc` without a network: Swagger UI and ReDoc from a package, under a strict CSP.

FastAPI's own docs pages load Swagger UI / ReDoc from a CDN, so offline (or behind a firewall)
they are blank. Here the pages load the copies that the `fastapi-offline` package ships
(`fastapi_offline/static`: swagger-ui-bundle.js, swagger-ui.css, favicon.png, redoc.standalone.js),
served by this app under `STATIC` (no API key needed, like the pages themselves).

Each page's Content-Security-Policy allows scripts and styles from this server only, plus the
page's own inline `<script>` by its hash (FastAPI's page writes one that starts Swagger UI),
and requests to this server only (the spec, and "Try it out"). ReDoc's bundle styles the page
with `<style>` elements it writes at run time, so /redoc alone also allows inline styles; its
scripts stay as strict as /docs'.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

STATIC = "/static/swagger"
"""Where the Swagger UI / ReDoc files are served."""
DOCS, REDOC, OAUTH2_REDIRECT = "/docs", "/redoc", "/docs/oauth2-redirect"


def assets_dir() -> Path:
    """The folder of Swagger UI and ReDoc files that the `fastapi-offline` package ships."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def asset_paths() -> frozenset[str]:
    """The URL path of every file served under `STATIC` (each open without the API key)."""
    return frozenset(f"{STATIC}/{p.name}" for p in assets_dir().iterdir() if p.is_file())


def _hash(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode() + "'"


def secured(page: HTMLResponse, inline_styles: bool = False) -> HTMLResponse:
    """`page` with a CSP allowing this server's files and the page's own inline scripts (by hash), nothing else."""
    html = page.body.decode("utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, flags=re.S)
    policy = "; ".join([
        "default-src 'none'",
        "script-src " + " ".join(["'self'", *map(_hash, scripts)]),
        "style-src " + ("'self' 'unsafe-inline'" if inline_styles else " ".join(["'self'", *map(_hash, styles)])),
        "img-src 'self' data:",  # Swagger UI's icons are data: URLs in its CSS
        "font-src 'self'",
        "connect-src 'self'",  # the schema and "Try it out"
        "worker-src 'self' blob:" if inline_styles else "worker-src 'none'",  # ReDoc's search runs in a blob: worker
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])
    headers = {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Cache-Control": "no-cache"}
    return HTMLResponse(html, headers=headers)


class _Assets(StaticFiles):
    """StaticFiles that also sends `X-Content-Type-Options: nosniff`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_nosniff(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-content-type-options", b"nosniff")]
            await send(message)

        await super().__call__(scope, receive, send_nosniff)


def add_docs(app: FastAPI, redoc: bool = True) -> frozenset[str]:
    """Serve /docs (and its OAuth2 redirect), /redoc and their files from this app; the app must be built
    with `docs_url=None, redoc_url=None`. Returns the paths to leave open without the API key."""
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

    opened = {DOCS, OAUTH2_REDIRECT, app.openapi_url, *asset_paths()}
    if redoc:
        @app.get(REDOC, include_in_schema=False)
        async def redoc_html(request: Request) -> HTMLResponse:
            base = root(request)
            return secured(get_redoc_html(
                openapi_url=base + app.openapi_url, title=f"{app.title} - ReDoc", with_google_fonts=False,
                redoc_js_url=f"{base}{STATIC}/redoc.standalone.js", redoc_favicon_url=f"{base}{STATIC}/favicon.png"),
                inline_styles=True)

        opened.add(REDOC)
    return frozenset(opened)

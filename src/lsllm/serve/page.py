"""`GET /`: a page to try the served model in a browser (page.html, a package resource).

The page is static: it holds no model details and no key, so serving it needs no API key; its
script asks `/info` and `/predict` (with the key the user types, kept in the page only). It
loads nothing else: the CSS and script are inline, and the Content-Security-Policy sent with
it allows exactly those two inline blocks (by hash) and requests to this server, nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from importlib import resources

PAGE = "page.html"


def _hash(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode() + "'"


@lru_cache(maxsize=1)
def page() -> tuple[str, dict[str, str]]:
    """The page's HTML and the headers it is served with."""
    html = resources.files("lsllm.serve").joinpath(PAGE).read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, flags=re.S)
    policy = "; ".join([
        "default-src 'none'",
        "script-src " + " ".join(map(_hash, scripts)),
        "style-src " + " ".join(map(_hash, styles)),
        "connect-src 'self'",
        "img-src data:",  # the empty favicon
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])
    headers = {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Cache-Control": "no-cache"}
    return html, headers

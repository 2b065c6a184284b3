"""`GET /` of the server: the try-it page, served without the API key and locked to itself by its CSP."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from lsllm.serve.app import ServeSettings, app_from_run


@pytest.fixture(scope="module")
def client(report_seq_run):
    app = app_from_run(report_seq_run, ServeSettings(api_key="k"), dtype="float32", device="cpu")
    with TestClient(app) as client:
        yield client


def test_the_page_is_served_without_the_key_and_holds_no_model_detail(client, report_seq_run):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'id="text"' in page and 'id="predict"' in page and 'id="key"' in page
    assert str(report_seq_run) not in page and "negative" not in page  # details come from /info, behind the key
    assert client.get("/info").status_code == 401 and client.get("/info", headers={"Authorization": "Bearer k"}).status_code == 200
    assert "/" not in client.get("/openapi.json").json()["paths"]  # the page is not part of the API


def test_the_csp_allows_exactly_the_pages_own_script_and_style(client):
    response = client.get("/")
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        (block,) = re.findall(rf"<{tag}>(.*?)</{tag}>", response.text, flags=re.S)
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert policy[directive] == f"'sha256-{digest}'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r'(src|href)="(https?:)?//', response.text)  # nothing from elsewhere

"""The HTTP API on trained tiny runs: endpoints, every kind of bad input, limits, auth, batching."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from lsllm.serve.app import ServeSettings, create_app

LONG = " ".join(["a wonderful , moving and lovely film"] * 30)  # far over 24 tokens, 1,100 characters


@pytest.fixture(scope="module")
def seq_client(seq_classifier, seq_run):
    from lsllm.runs import RunDir

    app = create_app(seq_classifier, ServeSettings(max_texts=8, max_body_bytes=4000), RunDir(seq_run).run_info())
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def token_client(token_classifier):
    with TestClient(create_app(token_classifier)) as client:
        yield client


def test_health_info_and_docs(seq_client, seq_classifier):
    assert seq_client.get("/health").json() == {"status": "ok"}
    info = seq_client.get("/info").json()
    assert info["task"] == "seq" and info["labels"] == seq_classifier.labels == ["negative", "positive"]
    assert info["attention"] == "causal (LS-LLM)" and info["pooling"] == "last"  # as the model card and report.html say it
    assert info["max_length"] == seq_classifier.max_length and info["model"]
    assert info["max_batch_tokens"] == seq_classifier.max_batch_tokens
    assert info["batching"] == {"max_batch_size": 32, "max_wait_ms": 5.0}
    assert info["limits"] == {"max_texts": 8, "max_body_bytes": 4000, "oversize": "truncate"}
    assert seq_client.get("/docs").status_code == 200
    schema = seq_client.get("/openapi.json").json()
    body = schema["components"]["schemas"]["PredictRequest"]["properties"]["texts"]
    assert body["anyOf"][0]["maxItems"] == 8  # the server's limit is in the published schema


def test_predict_matches_the_library_and_keeps_order(seq_client, seq_classifier):
    texts = ["a great movie", "boring and flat", "i loved it"]
    response = seq_client.post("/predict", json={"texts": texts})
    assert response.status_code == 200
    body = response.json()
    assert body == {"predictions": seq_classifier.predict_texts(texts), "truncated": []}
    record = body["predictions"][1]
    assert record["text"] == "boring and flat" and set(record["probabilities"]) == {"negative", "positive"}
    assert record["label"] == max(record["probabilities"], key=record["probabilities"].get)


@pytest.mark.parametrize(("payload", "status", "message"), [
    ({"texts": []}, 422, "texts: List should have at least 1 item"),
    ({"texts": [""]}, 422, "texts[0]: empty text"),
    ({"texts": ["fine", "  \n\t "]}, 422, "texts[1]: empty text"),
    ({"texts": ["fine", 3]}, 422, "texts[1]: Input should be a valid string"),
    ({"texts": [None]}, 422, "texts[0]"),
    ({"texts": "a great movie"}, 422, "texts: Input should be a valid list"),
    ({"texts": ["x"] * 9}, 422, "texts: List should have at most 8 items"),
    ({"text": ["a great movie"]}, 422, "text: Extra inputs are not permitted"),
    ({}, 422, 'send exactly one of "texts", "tokens" or "records"'),
    ({"texts": ["a"], "tokens": [["a"]]}, 422, 'send exactly one of "texts", "tokens" or "records"'),
    ({"tokens": [["EU", "rejects"]]}, 422, "sequence classifier"),
    (["a great movie"], 422, "body: expected a JSON object"),
])
def test_bad_json_bodies_are_4xx_with_a_clear_line(seq_client, payload, status, message):
    response = seq_client.post("/predict", json=payload)
    assert response.status_code == status
    assert message in response.json()["detail"]


@pytest.mark.parametrize(("content", "message"), [
    (b'{"texts": ["a great movie"', "not valid JSON"),
    (b"", "empty body"),
    (b'{"texts": ["\\ud800"]}', "lone surrogate"),
    (b'\xff\xfe{"texts"', "not valid JSON"),
])
def test_malformed_bodies_are_422(seq_client, content, message):
    response = seq_client.post("/predict", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert message in response.json()["detail"]


@pytest.mark.parametrize(("content", "content_type", "status", "message"), [
    (b'{"texts": ["caf\xe9"]}', "application/json", 400, "not UTF-8 JSON"),
    (b"\xb1", "application/json", 400, "not UTF-8 JSON"),
    (b"a great movie", "text/plain", 422, "Content-Type: application/json"),
    (b'{"texts": ["a great movie"]}', "text/plain", 422, "Content-Type: application/json"),
])
def test_undecodable_or_non_json_bodies_are_4xx(seq_client, content, content_type, status, message):
    response = seq_client.post("/predict", content=content, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_body_over_the_limit_is_413_declared_or_chunked(seq_client):
    big = json.dumps({"texts": ["a great movie " * 400]}).encode()
    response = seq_client.post("/predict", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "--max-body-bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit must hold on the bytes actually received
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    response = seq_client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert seq_client.post("/predict", json={"texts": ["still fine"]}).status_code == 200


def test_oversized_text_is_truncated_or_rejected(seq_classifier):
    short = dataclasses.replace(seq_classifier, max_length=24)
    with TestClient(create_app(short)) as client:
        texts = ["a great movie", LONG, LONG * 5]  # the last is long enough to be measured off the event loop
        response = client.post("/predict", json={"texts": texts})
        assert response.status_code == 200 and response.json()["truncated"] == [1, 2]
        # Truncation is exactly the classifier's: the long texts score as their first 24 tokens do.
        assert response.json()["predictions"] == short.predict_texts(texts)
    with TestClient(create_app(short, ServeSettings(oversize="reject"))) as client:
        response = client.post("/predict", json={"texts": ["a great movie", LONG]})
        assert response.status_code == 413
        assert response.json()["detail"].startswith("texts[1]:") and "--max-length" in response.json()["detail"]
        assert client.post("/predict", json={"texts": ["a great movie"]}).status_code == 200


def test_token_counts_include_the_runs_prompt(seq_classifier):
    """A run trained with --prompt encodes the prompt too: --oversize and `truncated` count it, as the encoder does."""
    from lsllm.data import SeqExample

    prompt = ("Read the following movie review carefully, then decide whether the writer liked the film or not, "
              "and answer with one word only.\nReview: {text}\nSentiment:")
    prompted = dataclasses.replace(seq_classifier, max_length=24, prompt=prompt)
    text = "a great movie"
    assert prompted.input_lengths("texts", [text])[0] > 24 > len(prompted.tokenizer(text)["input_ids"])
    assert prompted.encode([SeqExample(text)]).n_truncated == 1
    with TestClient(create_app(prompted)) as client:
        response = client.post("/predict", json={"texts": [text]})
        assert response.status_code == 200 and response.json()["truncated"] == [0]
    with TestClient(create_app(prompted, ServeSettings(oversize="reject"))) as client:
        assert client.post("/predict", json={"texts": [text]}).status_code == 413


def test_api_key_guards_predict_and_info_but_not_health(seq_classifier, monkeypatch):
    with TestClient(create_app(seq_classifier, ServeSettings(api_key="s3cret"))) as client:
        body = {"texts": ["a great movie"]}
        assert client.get("/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            assert client.post("/predict", json=body, headers=headers).status_code == 401
            response = client.get("/info", headers=headers)
            assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/predict", json=body, headers=good).status_code == 200
        assert client.get("/info", headers=good).json()["auth"] is True


def test_api_key_is_checked_before_anything_else_on_every_protected_path(seq_classifier):
    with TestClient(create_app(seq_classifier, ServeSettings(api_key="s3cret", max_body_bytes=4000))) as client:
        good = {"Authorization": "Bearer s3cret"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer"}):
            for method, path, kwargs in [("POST", "/predict", {"content": b"{not json"}),  # 422 with the key
                                         ("POST", "/predict", {"json": {"texts": []}}),  # 422
                                         ("POST", "/predict", {"content": b"x" * 5000}),  # 413
                                         ("POST", "/predict", {"content": b'{"texts": ["caf\xe9"]}'}),  # 400
                                         ("GET", "/predict", {}), ("HEAD", "/info", {}), ("POST", "/info", {}),  # 405
                                         ("GET", "/nowhere", {}), ("POST", "/health/x", {})]:  # 404
                response = client.request(method, path, headers={**headers, "Content-Type": "application/json"}, **kwargs)
                assert response.status_code == 401, (headers, method, path, response.status_code)
                assert response.headers["WWW-Authenticate"] == "Bearer"
                if method != "HEAD":
                    assert "Authorization: Bearer" in response.json()["detail"]
        malformed = {"content": b"{not json", "headers": {**good, "Content-Type": "application/json"}}
        assert client.post("/predict", **malformed).status_code == 422
        assert client.post("/predict", content=b"x" * 5000, headers=good).status_code == 413
        assert client.get("/predict", headers=good).status_code == 405
        assert client.get("/nowhere", headers=good).status_code == 404
        assert client.get("/info", headers={"Authorization": "bearer s3cret"}).status_code == 200  # the scheme is case-free
        for path in ("/health", "/", "/docs", "/openapi.json"):  # open, as docs/serving.md says
            assert client.get(path).status_code == 200, path


def test_head_health_answers_200_without_a_body(seq_classifier):
    for settings in (ServeSettings(), ServeSettings(api_key="s3cret")):  # open with or without a key
        with TestClient(create_app(seq_classifier, settings)) as client:
            response = client.head("/health")
            assert response.status_code == 200 and response.content == b""


def test_token_model_takes_texts_and_tokens(token_client, token_classifier):
    info = token_client.get("/info").json()
    assert info["task"] == "token" and info["labels"][0] == "O" and info["pooling"] is None
    text = "EU rejects German call to boycott British lamb."
    response = token_client.post("/predict", json={"texts": [text]})
    assert response.status_code == 200
    record = response.json()["predictions"][0]
    assert record["tokens"] == ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
    assert len(record["tags"]) == len(record["tokens"]) and set(record["tags"]) <= set(token_classifier.labels)
    for entity in record["entities"]:  # raw text: character offsets point into the text sent
        assert text[entity["char_start"] : entity["char_end"]] == entity["text"]
    words = [["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"]]
    response = token_client.post("/predict", json={"tokens": words})
    assert response.status_code == 200
    assert response.json()["predictions"] == token_classifier.predict_tokens(words)
    assert all("char_start" not in e for r in response.json()["predictions"] for e in r["entities"])
    for bad, where in (({"tokens": [[]]}, "tokens[0]"), ({"tokens": [["EU", " "]]}, "tokens[0][1]"),
                       ({"tokens": [["EU", 5]]}, "tokens[0][1]"), ({"tokens": ["EU rejects"]}, "tokens[0]")):
        response = token_client.post("/predict", json=bad)
        assert response.status_code == 422 and response.json()["detail"].startswith(where)


def test_concurrent_requests_share_model_calls(seq_classifier):
    """16 requests sent at once reach the model in far fewer calls, and each gets its own answer."""
    calls: list[int] = []
    counted = dataclasses.replace(seq_classifier)
    library = seq_classifier.predict_texts

    def predict_texts(texts, progress=None):
        calls.append(len(texts))
        return library(texts)

    counted.predict_texts = predict_texts
    app = create_app(counted, ServeSettings(max_batch_size=64, max_wait_ms=50))
    texts = [f"film number {i} was {'great' if i % 2 else 'dull'}" for i in range(16)]

    async def send_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/predict", json={"texts": [t]}) for t in texts))

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * 16
    assert [r.json()["predictions"][0]["text"] for r in responses] == texts
    assert sum(calls) == 16 and len(calls) < 16 // 2, calls
    alone = library(texts)  # batching (and its padding) does not change any answer
    for response, record in zip(responses, alone, strict=True):
        served = response.json()["predictions"][0]["probabilities"]
        assert served == pytest.approx(record["probabilities"], abs=1e-4)



@pytest.mark.parametrize("text", ["\u200b", "\ufeff", "\x00", "\u0301", " \u200b\t"])
def test_texts_without_a_visible_character_are_refused_like_empty_ones(seq_client, text):
    response = seq_client.post("/predict", json={"texts": ["a great movie", text]})
    assert response.status_code == 422 and "visible character" in response.json()["detail"]


def test_docs_load_swagger_ui_from_this_server_open_without_the_key(seq_classifier):
    """/docs works offline: Swagger UI's files come from the fastapi-offline package, served here and open like /docs."""
    import base64
    import hashlib
    import re

    from lsllm.serve.docs import ASSETS, STATIC

    with TestClient(create_app(seq_classifier, ServeSettings(api_key="s3cret"))) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sorted(loaded) == sorted(f"{STATIC}/{name}" for name in ASSETS)  # all on this server, no CDN
        for url, kind in zip(sorted(loaded), ("image/png", "javascript", "text/css"), strict=True):
            response = client.get(url)  # no key
            assert response.status_code == 200 and kind in response.headers["content-type"], url
            assert response.headers["x-content-type-options"] == "nosniff" and len(response.content) > 1000
        # The page's one inline script (it starts Swagger UI) is allowed by its hash; nothing else inline, nothing outside.
        policy = page.headers["content-security-policy"]
        scripts = re.findall(r"<script>(.*?)</script>", page.text, flags=re.S)
        assert len(scripts) == 1 and "SwaggerUIBundle(" in scripts[0] and "url: '/openapi.json'" in scripts[0]
        digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
        assert f"script-src 'self' 'sha256-{digest}';" in policy and "default-src 'none'" in policy
        assert "unsafe" not in policy and "http" not in policy
        assert client.get("/docs/oauth2-redirect").status_code == 200
        schema = client.get("/openapi.json")  # no key
        assert schema.status_code == 200 and "/predict" in schema.json()["paths"]
        assert not any(p.startswith(("/docs", "/static", "/redoc")) for p in schema.json()["paths"])
        # Only those files are served and open: anything else there is a 401 without the key, a 404 with it.
        good = {"Authorization": "Bearer s3cret"}
        for path in (f"{STATIC}/redoc.standalone.js", f"{STATIC}/", f"{STATIC}/../docs.py", f"{STATIC}/%2e%2e/docs.py",
                     "/static/swagger-ui.css", "/redoc"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers=good).status_code == 404, path


def test_docs_behind_a_root_path_load_from_under_it(seq_classifier):
    with TestClient(create_app(seq_classifier), root_path="/lsllm") as client:
        page = client.get("/lsllm/docs")
        assert page.status_code == 200
        assert 'src="/lsllm/static/swagger/swagger-ui-bundle.js"' in page.text and "url: '/lsllm/openapi.json'" in page.text
        assert client.get("/lsllm/static/swagger/swagger-ui.css").status_code == 200

"""Fuzzing the server with what schemathesis does not send: raw bytes, hostile JSON, stalled bodies.

tests/serve/test_fuzz.py generates requests from the published schema; here the bodies are
bytes and JSON text built from the pieces that broke the server before (nesting deeper than the
parser's recursion limit, 5000-digit integers, NaN, invalid UTF-8, U+2028). Each answer must be
a 2xx or a 4xx whose detail is one line that says what is wrong, never a 5xx. The API key must
keep the model, labels and run name out of /docs and /openapi.json, a client that declares
a body and stops sending must get a 408 instead of holding its connection, and one that stops
in the middle of its request line or headers must be disconnected (--header-timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from lsllm.serve.app import ServeSettings, create_app
from tests.fuzz.conftest import FUZZ

PIECES = ['{"texts": [', '"a great movie"', "]", "}", ",", "[" * 3000, "]" * 3000, "9" * 5000, "NaN", "-Infinity",
          '"\\ud800"', '"\u2028"', '"\\u0000"', "null", "true", '"tokens"', '"texts"', ":", "\xff", " ", '""', '"  "']
BODIES = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from(PIECES), max_size=8).map(lambda parts: "".join(parts).encode("utf-8", errors="surrogateescape")),
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3).map(lambda texts: json.dumps({"texts": texts}).encode()),
)


@pytest.fixture(scope="module")
def client(seq_classifier):
    with TestClient(create_app(seq_classifier, ServeSettings(max_texts=4, max_body_bytes=20_000))) as c:
        yield c


@given(body=BODIES, content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain"]))
@settings(FUZZ, max_examples=200)  # a request costs ~10 ms
def test_raw_bodies_get_2xx_or_a_one_line_4xx(client, body, content_type):
    response = client.post("/predict", content=body, headers={"Content-Type": content_type})
    assert response.status_code in (200, 400, 413, 422), (response.status_code, response.text)
    if response.status_code == 200:
        sent = json.loads(body)["texts"]
        assert [r["text"] for r in response.json()["predictions"]] == sent
    else:
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail
        assert "There was an error parsing the body" not in detail


@pytest.mark.parametrize(("body", "message"), [
    (b'{"texts": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
    (b"[" * 15_000, "nested too deeply"),
    (b'{"texts": ' + b"9" * 5000 + b"}", "not valid JSON"),
    (b'{"texts": ["caf\xe9"]}', "not UTF-8"),
])
def test_unparsable_bodies_say_why(client, body, message):
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and message in response.json()["detail"], response.text


def test_api_key_keeps_model_labels_and_run_out_of_the_public_docs(seq_classifier, seq_run):
    from lsllm.runs import RunDir

    run_info = RunDir(seq_run).run_info()
    secrets = [*seq_classifier.labels, str(run_info.base_model), "secret-run"]
    app = create_app(seq_classifier, ServeSettings(api_key="k3y"), run_info, title="lsllm: secret-run")
    with TestClient(app) as locked:
        assert locked.get("/redoc").status_code == 401  # no ReDoc (it needs a CDN): an unknown path, behind the key
        for path in ("/docs", "/openapi.json", "/docs/oauth2-redirect"):
            response = locked.get(path)
            assert response.status_code in (200, 404)
            for secret in secrets:
                assert secret not in response.text, (path, secret)
        schema = locked.get("/openapi.json").json()
        assert {"SeqResponse", "TokenResponse"} <= set(schema["components"]["schemas"])  # the task is not told either
        assert locked.get("/info").status_code == 401
        info = locked.get("/info", headers={"Authorization": "Bearer k3y"}).json()
        assert info["labels"] == seq_classifier.labels
    with TestClient(create_app(seq_classifier, run_info=run_info)) as open_client:  # without a key the docs say it all
        assert all(label in open_client.get("/openapi.json").text for label in seq_classifier.labels)


def test_a_trickling_body_is_cut_at_the_deadline(seq_classifier):
    app = create_app(seq_classifier, ServeSettings(body_timeout_s=0.3))
    sent: list[dict] = []

    async def receive():
        await asyncio.sleep(0.1)  # one byte every 0.1 s: each chunk is in time, the whole body is not
        return {"type": "http.request", "body": b" ", "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "path": "/predict",
             "raw_path": b"/predict", "query_string": b"", "root_path": "", "scheme": "http", "server": ("test", 80),
             "client": ("test", 1), "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]}
    start = time.monotonic()
    asyncio.run(app(scope, receive, send))
    assert time.monotonic() - start < 2
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 408
    assert "--body-timeout" in json.loads(sent[1]["body"])["detail"]


def test_a_stalled_client_gets_408_and_the_server_keeps_answering(seq_classifier):
    settings = ServeSettings(body_timeout_s=0.5)
    with serving(create_app(seq_classifier, settings), settings) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            stalled.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 100\r\n\r\n" + b'{"texts": [')  # 11 of 100 bytes, then nothing
            start = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as other:  # meanwhile, others are served
                other.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
                assert other.recv(1000).startswith(b"HTTP/1.1 200")
            answer = b""
            while chunk := stalled.recv(4096):  # the server answers, then closes the connection
                answer += chunk
            waited = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"--body-timeout" in answer and 0.3 < waited < 5, waited


@contextlib.contextmanager
def serving(app, serve_settings: ServeSettings):
    """`app` on a free loopback port under uvicorn as `lsllm serve` configures it; yields the port."""
    import uvicorn

    from lsllm.serve.cli import uvicorn_config

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn_config(app, serve_settings))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def _closed_after(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    start, answer = time.monotonic(), b""
    while chunk := sock.recv(4096):
        answer += chunk
    return answer, time.monotonic() - start


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP response (head and Content-Length body), however the bytes arrive."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += (chunk := sock.recv(65536))
        assert chunk, data
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += (chunk := sock.recv(65536))
        assert chunk, data
    return head + b"\r\n\r\n" + body


def test_clients_that_stall_before_their_headers_end_are_disconnected(seq_classifier):
    serve_settings = ServeSettings(header_timeout_s=0.6, body_timeout_s=2.0)
    with serving(create_app(seq_classifier, serve_settings), serve_settings) as port:
        address = ("127.0.0.1", port)
        with contextlib.ExitStack() as stack:
            stalled = [stack.enter_context(socket.create_connection(address, timeout=10)) for _ in range(6)]
            stalled[0].sendall(b"GET /hea")  # a partial request line
            stalled[1].sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-")  # a partial header block
            # nothing at all on stalled[2]; one byte every 0.2 s on stalled[3] (in time each, not in total)
            stalled[4].sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /hea")  # an answer, then a partial second request
            stalled[5].sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")  # an answer, then an idle keep-alive
            start = time.monotonic()
            for byte in b"GET /health HT":
                with contextlib.suppress(OSError):
                    stalled[3].send(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - start > 2:
                    break
            with socket.create_connection(address, timeout=10) as other:  # the server keeps answering others
                other.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
                assert other.recv(1000).startswith(b"HTTP/1.1 200")
            for i, sock in enumerate(stalled):
                answer, _ = _closed_after(sock)
                waited = time.monotonic() - start
                assert waited < 4, (i, waited)  # 0.6 s (--header-timeout) plus slack; uvicorn alone keeps them forever
                answered = answer.startswith(b"HTTP/1.1 200") and answer.count(b"HTTP/1.1") == 1
                assert answered if i >= 4 else answer == b"", (i, answer)  # closed without a (second) answer


def test_the_header_timeout_does_not_cut_bodies_or_slow_answers(seq_classifier):
    serve_settings = ServeSettings(header_timeout_s=0.3, body_timeout_s=1.5)
    app = create_app(seq_classifier, serve_settings)
    with serving(app, serve_settings) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
        answer, waited = _closed_after(client)  # the headers were in time: the body's own deadline answers, not the header one
        assert answer.startswith(b"HTTP/1.1 408") and b"--body-timeout" in answer and 1.2 < waited < 5, (waited, answer[:100])
    with serving(app, serve_settings) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        body = json.dumps({"texts": ["a great movie"] * 4}).encode()
        request = (b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
        for _ in range(3):  # keep-alive requests, each sent 0.2 s after the previous answer: all in time
            client.sendall(request)
            answer = _response(client)
            assert answer.startswith(b"HTTP/1.1 200") and b'"predictions"' in answer, answer[:200]
            time.sleep(0.2)

"""The prediction server: a FastAPI app around one trained run's `Classifier`.

    POST /predict  {"texts": [...]} or, for token models, {"tokens": [[word, ...], ...]}
                   -> {"predictions": [record, ...], "truncated": [input index, ...]}
    GET  /health   liveness, never behind the API key (HEAD /health too: 200, no body)
    GET  /info     model, labels, task, attention mode, pooling, max_length, limits
    GET  /docs     OpenAPI UI (Swagger UI from a package, no CDN: serve/docs.py; no /redoc)
    GET  /         a page to try the model in a browser (serve/page.html; calls /info and /predict)

Records are those of `lsllm predict` and predictions.jsonl (lsllm.inference.prediction), because the
server calls the same `Classifier.predict_texts` / `predict_tokens` the CLI does.

Every input is checked here, before it reaches the model, so bad input is a 4xx with one clear
line and never a 5xx: body size (413), JSON shape and types, empty and blank strings, lone
surrogates, too many texts (422), token lists for a sequence model (422) and, with
`oversize="reject"`, inputs longer than `max_length` tokens (413). A body that does not arrive
within `body_timeout_s` is a 408, so a client that declares a size and stops sending cannot
hold the server. Valid requests go through the `MicroBatcher`, which shares model calls
between concurrent requests.

With an API key, every path but /health, / and the docs needs it, checked (`ApiKey`) before
the body is read, validated or routed. /docs and /openapi.json stay open (a client needs the API's shape, and the
docs' Authorize button takes the key) but name neither the run, the model, the task nor the
labels: those are behind the key, at /info.

This module deliberately has no `from __future__ import annotations`: the request model is
built per app (its limits are settings) and FastAPI must see the real class, not a string.
"""

import asyncio
import copy
import logging
import secrets
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from lsllm import describe
from lsllm.data.encoding import special_tokens
from lsllm.data.text import has_visible_text
from lsllm.errors import ConfigError, DataError
from lsllm.inference.settings import InferenceSettings
from lsllm.serve.batching import MicroBatcher
from lsllm.serve.docs import add_docs
from lsllm.serve.page import page as try_page_html
from lsllm.serve.settings import ServeSettings
from lsllm.version import __version__

if TYPE_CHECKING:
    from lsllm.runs import ExportInfo, RunInfo

logger = logging.getLogger(__name__)

INLINE_CHARS = 4096
"""Requests with at most this many characters are length-checked on the event loop itself."""

# ----------------------------------------------------------------------------- schemas


def _clean(value: str) -> str:
    """Non-blank and encodable: the model must never see an empty or unencodable string."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode (a lone surrogate such as \\ud800); send UTF-8 text") from None
    if not has_visible_text(value):
        raise ValueError("empty text; give at least one visible character (not only spaces, zero-width or control characters)")
    return value


Text = Annotated[StrictStr, AfterValidator(_clean)]


def request_model(max_texts: int) -> type[BaseModel]:
    """The /predict body, with this server's `max_texts` in its schema (shown in /docs)."""

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "examples": [{"texts": ["a great movie", "EU rejects German call to boycott British lamb ."]},
                         {"tokens": [["EU", "rejects", "German", "call"]]}]})

        texts: Annotated[list[Text], Field(min_length=1, max_length=max_texts)] | None = Field(
            None, description=f"raw texts, 1 to {max_texts}")
        tokens: Annotated[list[Annotated[list[Text], Field(min_length=1)]], Field(min_length=1, max_length=max_texts)] | None = Field(
            None, description=f"token models only: pre-split words per sentence, 1 to {max_texts} sentences")
        records: Annotated[list[dict[str, Text]], Field(min_length=1, max_length=max_texts)] | None = Field(
            None, description=f"runs on several text fields (sentence pairs): one object of the run's fields per input "
                              f"(/info lists them), 1 to {max_texts}")

        @model_validator(mode="after")
        def _exactly_one(self) -> "PredictRequest":
            if sum(x is not None for x in (self.texts, self.tokens, self.records)) != 1:
                raise ValueError('send exactly one of "texts", "tokens" or "records", e.g. {"texts": ["a great movie"]}')
            return self

    return PredictRequest


class Entity(BaseModel):
    type: str
    start: int = Field(description="first word index")
    end: int = Field(description="word index after the last (exclusive)")
    text: str
    score: float
    char_start: int | None = Field(None, description="raw-text inputs only")
    char_end: int | None = Field(None, description="raw-text inputs only (exclusive)")


class SeqRecord(BaseModel):
    text: str
    fields: dict[str, str] | None = Field(None, description="runs on several text fields: the input's fields")
    label: str | None = Field(None, description="single-label: the chosen label")
    score: float | None = Field(None, description="single-label: its probability")
    labels: list[str] | None = Field(None, description="multi-label: the labels above their thresholds (possibly none)")
    value: float | None = Field(None, description="regression: the predicted number")
    probabilities: dict[str, float] | None = Field(None, description="single- and multi-label: every label's probability")


class TokenRecord(BaseModel):
    text: str
    tokens: list[str]
    tags: list[str]
    entities: list[Entity]


class SeqResponse(BaseModel):
    predictions: list[SeqRecord]
    truncated: list[int] = Field(description="indices of inputs cut to max_length tokens")


class TokenResponse(BaseModel):
    predictions: list[TokenRecord]
    truncated: list[int] = Field(description="always empty: long inputs are covered by overlapping windows")


class ErrorResponse(BaseModel):
    detail: str


class Health(BaseModel):
    status: str


# ----------------------------------------------------------------------------- middleware


class BodyLimit:
    """ASGI middleware: bodies over `max_bytes` get a 413 before anything parses them, and
    bodies not complete within `timeout_s` seconds get a 408.

    The body is read here (bounded in size and time) and replayed to the app, so a chunked
    upload without a Content-Length is bounded as well as a declared one, and a client that
    declares a size and stops sending (or trickles bytes) frees its connection after timeout_s.
    """

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        chunks, size = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                detail = (f"request body not received within {self.timeout_s:g} s (--body-timeout); "
                          "send the whole body at once, as Content-Length declares")
                await JSONResponse({"detail": detail}, status_code=408, headers={"Connection": "close"})(scope, receive, send)
                return
            if message["type"] != "http.request":  # the client disconnected
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: dict, receive: Any, send: Any) -> None:
        detail = f"request body over {self.max_bytes} bytes (--max-body-bytes); send fewer or shorter texts per request"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


UNAUTHORIZED = "missing or wrong API key: send the header 'Authorization: Bearer <key>'"


class ApiKey:
    """ASGI middleware, outermost: every path but `open_paths` needs `Authorization: Bearer <key>`.

    It answers 401 before anything reads the body or routes the request, so without the key no
    request learns more than "401": not a 422 or 400 from body validation, not a 413, and not a
    404/405 that would tell which paths and methods exist. The key is compared in constant time
    with the header's raw bytes (a UTF-8 key matches what curl sends).
    """

    def __init__(self, app: Any, api_key: str, open_paths: frozenset[str]) -> None:
        self.app = app
        self.expected = api_key.encode("utf-8")
        self.open_paths = open_paths

    def authorized(self, scope: dict) -> bool:
        value = next((v for k, v in scope["headers"] if k.lower() == b"authorization"), b"")
        scheme, _, credentials = value.partition(b" ")
        return scheme.lower() == b"bearer" and secrets.compare_digest(credentials, self.expected)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or self.authorized(scope):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root + "/"):
            path = path[len(root):]
        if path in self.open_paths:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await JSONResponse({"detail": UNAUTHORIZED}, status_code=401,
                               headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


# ----------------------------------------------------------------------------- helpers


def _location(loc: Sequence) -> str:
    """("body", "texts", 3) -> "texts[3]"; the body itself is "body"."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_message(errors: Sequence[dict], limit: int = 3) -> str:
    """Pydantic/FastAPI errors as one line, e.g. "texts[2]: empty text; give at least ..."."""
    lines = []
    for err in errors[:limit]:
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "invalid JSON")
            lines.append(f'body is not valid JSON ({reason}); send {{"texts": ["..."]}} with Content-Type: application/json')
            continue
        if tuple(err.get("loc", ())) == ("body",) and err.get("type") == "missing":
            lines.append('empty body; send {"texts": ["..."]} with Content-Type: application/json')
            continue
        if tuple(err.get("loc", ())) == ("body",) and err.get("type") in ("model_attributes_type", "model_type", "dict_type"):
            lines.append('body: expected a JSON object such as {"texts": ["..."]} sent with Content-Type: application/json')
            continue
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{_location(err.get('loc', ()))}: {message}")
    if len(errors) > limit:
        lines.append(f"and {len(errors) - limit} more")
    return "; ".join(lines)


def served_run(classifier: Any, run_info: "RunInfo | ExportInfo | None" = None) -> dict[str, Any]:
    """What /info reports: read from the loaded model's config, else the run's model/lsllm.json (or the export's lsllm-export.json)."""
    info = run_info
    config = getattr(classifier.model, "config", None)
    bidirectional = bool(getattr(config, "lsllm_bidirectional", info is not None and info.bidirectional))
    unmask = getattr(config, "lsllm_unmask_layers", info.unmask_layers if info is not None else None)
    problem = classifier.problem  # the task family member: /info says what it is, so the page tests no task name
    pooling = problem.saved_pooling(getattr(config, "lsllm_pooling", info.pooling if info is not None else None))
    return {
        "model": info.base_model if info is not None else None,
        "task": classifier.task,
        "labels": list(classifier.labels),
        "problem": problem.saved_problem,
        "per_word": problem.per_word,  # tags and entities per word; word lists accepted as "tokens"
        "numeric": problem.numeric,  # a regression: a number per input, no label to choose
        "fields": getattr(classifier, "fields", None),
        "thresholds": (problem.saved_state() or {}).get("thresholds"),
        "attention": describe.attention({"model": {"bidirectional": bidirectional, "unmask_layers": unmask,
                                                   "attention": "repeat" if getattr(config, "lsllm_repeat", info is not None and info.repeat)
                                                   else None}}),
        "bidirectional": bidirectional,
        "unmask_layers": unmask,
        "pooling": pooling,
        "max_length": classifier.max_length,
        "max_batch_tokens": getattr(classifier, "max_batch_tokens", None),
        "trained_max_length": info.max_length if info is not None else classifier.max_length,
        "backend": classifier.backend,
        "matmul": classifier.matmul if classifier.backend == "torch" else None,
        "versions": info.versions if info is not None else {},
    }


class _Lengths:
    """Token counts exactly as the classifier will encode each input (its --prompt included, special tokens excluded).

    Runs in request threads while the model thread tokenizes too; its own copy of the tokenizer
    keeps a Rust tokenizer from ever being borrowed by both (transformers mutates it when a call
    changes truncation or padding, which fails with "Already borrowed" under concurrency).
    """

    def __init__(self, classifier: Any) -> None:
        self.classifier = classifier
        self.tokenizer = copy.deepcopy(classifier.tokenizer)
        self.prefix = len(special_tokens(self.tokenizer))

    def __call__(self, kind: str, inputs: list) -> list[int]:
        return self.classifier.input_lengths(kind, inputs, self.tokenizer)


# ----------------------------------------------------------------------------- the app


def create_app(classifier: Any, settings: ServeSettings | None = None, run_info: "RunInfo | ExportInfo | None" = None,
               title: str = "lsllm") -> FastAPI:
    """A FastAPI app serving `classifier` (a `lsllm.inference.Classifier`).

    Args:
        classifier: the loaded run; its `max_length` is the serving limit.
        settings: limits, batching and the API key.
        run_info: the run's model/lsllm.json, `RunDir(run).run_info()` (for /info: base model, versions).
        title: shown in /docs.

    Example:
        classifier, _ = lsllm.pipeline.load_run("runs/sst2")
        uvicorn.run(create_app(classifier, ServeSettings(max_batch_size=16)), host="127.0.0.1")
    """
    settings = settings or ServeSettings()
    lengths = _Lengths(classifier)
    batcher = MicroBatcher(_predictor(classifier), settings.max_batch_size, settings.max_wait_ms)
    info = {**served_run(classifier, run_info),
            "limits": {"max_texts": settings.max_texts, "max_body_bytes": settings.max_body_bytes, "oversize": settings.oversize},
            "batching": {"max_batch_size": settings.max_batch_size, "max_wait_ms": settings.max_wait_ms},
            "auth": settings.api_key is not None}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await batcher.close()

    if settings.api_key:  # the schema is public: what the key protects (/info) must not be in it
        title, description = "lsllm", "A trained lsllm classifier. Model, task and labels: GET /info with the API key."
    else:
        description = (f"{classifier.task} classifier over {info['model'] or 'a trained run'}: "
                       f"labels {', '.join(classifier.labels)}")
    # FastAPI's own docs page loads Swagger UI from a CDN (blank offline): add_docs serves a package's copy.
    app = FastAPI(title=title, version=__version__, lifespan=lifespan, description=description, docs_url=None, redoc_url=None)
    docs_paths = add_docs(app)  # /docs, its OAuth2 redirect, its static files and /openapi.json
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    if settings.api_key:  # added last, so it runs first: before the body is read, validated or routed
        open_paths = frozenset({"/", "/health", *docs_paths})
        app.add_middleware(ApiKey, api_key=settings.api_key, open_paths=open_paths)
    app.state.batcher = batcher
    app.state.classifier = classifier

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":  # FastAPI's; the cause says why
            exc = HTTPException(400, _unparsable(exc.__cause__))
        return await http_exception_handler(request, exc)

    @app.exception_handler(DataError)
    async def _bad_data(_request, exc: DataError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    guarded = [Depends(_api_key_check(settings.api_key))] if settings.api_key else []
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorResponse, "description": "body is not UTF-8 JSON, or JSON too deeply nested to read"},
        408: {"model": ErrorResponse, "description": "body not received within --body-timeout seconds"},
        413: {"model": ErrorResponse, "description": "body over --max-body-bytes, or an input over max_length tokens with --oversize reject"},
        422: {"model": ErrorResponse, "description": "invalid input (shape, types, empty text, too many texts)"},
    }
    if settings.api_key:
        errors[401] = {"model": ErrorResponse, "description": "missing or wrong API key"}
    PredictRequest = request_model(settings.max_texts)
    response_model = TokenResponse if classifier.problem.per_word else SeqResponse
    if settings.api_key:  # the response schema would tell the task
        response_model = SeqResponse | TokenResponse  # type: ignore[assignment]

    @app.get("/", include_in_schema=False)
    async def try_page() -> HTMLResponse:
        """A page to try the model (static, no API key needed: its script sends the key the user types)."""
        html, headers = try_page_html()
        return HTMLResponse(html, headers=headers)

    @app.get("/health", response_model=Health)
    async def health() -> dict:
        """Liveness: the model is loaded and the server answers (no API key needed)."""
        return {"status": "ok"}

    @app.head("/health", include_in_schema=False)
    async def health_head() -> Response:
        """The same for load balancers that probe with HEAD: 200, no body."""
        return Response(status_code=200)

    @app.get("/info", dependencies=guarded, responses={k: v for k, v in errors.items() if k == 401})
    async def model_info() -> dict:
        """The served run: base model, task, labels, attention mode, pooling, max_length, limits."""
        return info

    @app.post("/predict", dependencies=guarded, response_model=response_model, responses=errors)
    async def predict(body: PredictRequest) -> JSONResponse:  # type: ignore[valid-type]
        """One record per input, in the order sent (the schema of `lsllm predict`)."""
        kind, inputs = next((k, v) for k, v in (("texts", body.texts), ("tokens", body.tokens), ("records", body.records))
                            if v is not None)
        if kind == "tokens":
            classifier.problem.from_tokens(inputs)  # a classifier of texts refuses word lists: DataError, a 422
        fields = getattr(classifier, "fields", None)
        if kind == "records" and not fields:
            raise HTTPException(422, 'this run reads one text: send {"texts": [...]}')
        if kind == "texts" and fields:
            example = "{" + ", ".join(f'"{name}": "..."' for name in fields) + "}"
            raise HTTPException(422, f'this run reads several fields: send {{"records": [{example}]}}')
        if kind == "records":
            for i, record in enumerate(inputs):
                missing = [name for name in fields if name not in record]
                if missing or set(record) - set(fields):
                    raise HTTPException(422, f"records[{i}]: the fields are {', '.join(fields)}; "
                                             + (f"{missing[0]!r} is missing" if missing else "drop the others"))
        size = sum(len(x) if kind == "texts" else sum(map(len, x.values() if kind == "records" else x)) for x in inputs)
        # Short inputs tokenize in microseconds, less than a thread hop costs; long ones must not block the loop.
        counts = lengths(kind, inputs) if size <= INLINE_CHARS else await run_in_threadpool(lengths, kind, inputs)
        limit = classifier.max_length - lengths.prefix
        for i, n in enumerate(counts):
            if n == 0:
                raise HTTPException(422, f"{kind}[{i}]: the tokenizer produces no tokens for this input; send visible text")
            if settings.oversize == "reject" and n > limit:
                raise HTTPException(413, f"{kind}[{i}]: {n + lengths.prefix} tokens, over the limit of {classifier.max_length} "
                                         "(--max-length); shorten it, or start the server with --oversize truncate")
        truncated = [] if classifier.problem.per_word else [i for i, n in enumerate(counts) if n > limit]  # per word: windows
        records = await batcher.submit(kind, inputs)
        return JSONResponse({"predictions": records, "truncated": truncated})

    return app


def _unparsable(cause: BaseException | None) -> str:
    """The 400 message for a body FastAPI could not parse, from the exception behind it."""
    send = 'send {"texts": ["..."]} as UTF-8 JSON with Content-Type: application/json'
    if isinstance(cause, UnicodeDecodeError):
        return f"body is not UTF-8 JSON; {send}"
    if isinstance(cause, RecursionError):
        return f"body is JSON nested too deeply to read; {send}"
    if isinstance(cause, ValueError):  # e.g. an integer over Python's 4300-digit limit
        return f"body is not valid JSON ({str(cause)[:80]}); {send}"
    return f"body could not be read as JSON; {send}"


def _predictor(classifier: Any):
    def predict(kind: str, inputs: list) -> list[dict]:
        if kind == "tokens":
            return classifier.predict_tokens(inputs)
        return classifier.predict_texts(inputs)

    return predict


def _api_key_check(api_key: str):
    """The route-level check: `ApiKey` answers first; this puts the scheme in the OpenAPI schema
    (the Authorize button of /docs) and checks again where the route runs."""
    bearer = HTTPBearer(auto_error=False, description="the server's --api-key / LSLLM_API_KEY")
    expected = api_key.encode("utf-8")

    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        # Starlette decodes headers as latin-1: encoding back gives the bytes sent, as ApiKey compares them.
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode("latin-1"), expected):
            raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})

    return check


def app_from_run(run_dir: str | Path, settings: ServeSettings | None = None, max_length: int | None = None,
                 inference: InferenceSettings | None = None, **inference_fields: Any) -> FastAPI:
    """Load a trained run (LoRA merged, safetensors only), or an `lsllm export` folder, and build its app.

    Args:
        run_dir: a finished `lsllm train` output directory, or a folder written by `lsllm export`.
        settings: server limits and batching.
        max_length: serving limit in tokens (default: the run's training max_length).
        inference: what runs the model (`lsllm.inference.settings.InferenceSettings`: threads, dtype,
            backend, int8, matmul, device, max_batch_tokens), or its fields as keywords
            (``app_from_run(run, dtype="float32", device="cpu")``). An export folder is always
            served by ONNX Runtime; a run with backend "onnx" is exported first (`lsllm export`'s
            checks included) into a temporary folder. ``max_batch_tokens`` cuts a micro-batch into
            length-sorted forward passes of at most that many tokens (torch: one packed row, no
            padding; onnx: one padded batch).

    Raises:
        ConfigError: not a finished run or export, a setting that does not apply to the backend, or
            a max_length the model cannot take.
    """
    from lsllm.inference.backends import open_classifier

    opened = open_classifier(run_dir, inference, **inference_fields)
    classifier, positions = opened.classifier, opened.positions
    if max_length is not None:
        if max_length < 8 or (positions and max_length > positions):
            raise ConfigError(f"--max-length must be between 8 and the model's {positions} positions, got {max_length}")
        if max_length > classifier.max_length:
            logger.warning("--max-length %d is above the %d tokens the run was trained on", max_length, classifier.max_length)
        classifier.max_length = max_length
    logger.info("serving %s (%s): %s", run_dir, classifier.backend,
                asdict(settings or ServeSettings()) | {"api_key": bool(settings and settings.api_key)})
    app = create_app(classifier, settings, opened.run_info, title=f"lsllm: {opened.name}")
    app.state.export_dir = opened.keep  # a run exported for this server: its temporary folder lives as long as the app
    return app

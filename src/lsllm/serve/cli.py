"""`lsllm serve RUN_DIR`: the prediction server's command line.

    lsllm serve runs/sst2-...                                  # http://127.0.0.1:8000, docs at /docs
    LSLLM_API_KEY=secret lsllm serve runs/conll03-... --host 0.0.0.0 --port 9000
    lsllm serve runs/sst2-... --max-batch-size 64 --max-wait-ms 10 --oversize reject

The socket is bound here, before the model loads, so a taken port is a one-line error instead
of a traceback after a minute of loading; uvicorn then serves on that socket, with a deadline for
each request's line and headers (`header_timeout_protocol`: uvicorn itself has none).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from lsllm.errors import ConfigError, LsllmError
from lsllm.inference.settings import SERVE_FLAGS, InferenceSettings, add_inference_flags
from lsllm.serve.settings import OVERSIZE, ServeSettings

logger = logging.getLogger(__name__)

API_KEY_ENV = "LSLLM_API_KEY"
_DEFAULTS = ServeSettings()
DESCRIPTION = ("Serve a trained run with FastAPI + uvicorn. Concurrent requests are micro-batched into shared "
               "model calls; see docs/serving.md.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `serve` command to the `lsllm` parser's subcommands."""
    serve = subparsers.add_parser("serve", help="serve a trained run over HTTP: POST /predict, GET /health, /info, /docs",
                                  description=DESCRIPTION)
    add_arguments(serve)
    serve.set_defaults(handler=cmd_serve)


def add_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("run_dir", help="a finished `lsllm train` output directory, or a folder from `lsllm export`")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only; "
                       "another address without an API key prints a warning)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--max-batch-size", type=int, default=_DEFAULTS.max_batch_size,
                       help=f"most inputs per model call when merging concurrent requests (default {_DEFAULTS.max_batch_size})")
    serve.add_argument("--max-wait-ms", type=float, default=_DEFAULTS.max_wait_ms,
                       help=f"longest a request waits for others to share its batch (default {_DEFAULTS.max_wait_ms:g})")
    serve.add_argument("--max-length", type=int, default=None,
                       help="tokens per input; longer sequence inputs are truncated (default: the run's max_length)")
    serve.add_argument("--oversize", choices=OVERSIZE, default=_DEFAULTS.oversize,
                       help="inputs over --max-length: truncate (token models: sliding windows) or reject with 413")
    serve.add_argument("--max-texts", type=int, default=_DEFAULTS.max_texts,
                       help=f"most texts per request, more is a 422 (default {_DEFAULTS.max_texts})")
    serve.add_argument("--max-body-bytes", type=int, default=_DEFAULTS.max_body_bytes,
                       help=f"largest request body, more is a 413 (default {_DEFAULTS.max_body_bytes})")
    serve.add_argument("--body-timeout", type=float, default=_DEFAULTS.body_timeout_s,
                       help=f"seconds a request body may take to arrive, slower is a 408 (default {_DEFAULTS.body_timeout_s:g})")
    serve.add_argument("--header-timeout", type=float, default=_DEFAULTS.header_timeout_s,
                       help="seconds a connection may take to send a request's line and headers, from its opening or "
                            f"its previous answer; slower is disconnected (default {_DEFAULTS.header_timeout_s:g})")
    serve.add_argument("--api-key", default=None,
                       help=f"require 'Authorization: Bearer KEY' on every path but /health, / and the docs (prefer env "
                            f"{API_KEY_ENV}: command lines are visible to other users; an empty key is an error)")
    add_inference_flags(serve, SERVE_FLAGS)  # --threads --dtype --backend --int8 --matmul --device --max-batch-tokens


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, api_key: str | None) -> str | None:
    """The warning printed when the server is reachable from other machines without a key."""
    if api_key or is_loopback(host):
        return None
    return (f"warning: serving on {host} without an API key: anyone who can reach this address can use the model; "
            f"set {API_KEY_ENV} or pass --api-key")


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for host:port, or a one-line ConfigError saying why not."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ConfigError(f"--host {host}: cannot resolve it ({err.strerror}); give an IP address or hostname") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot bind {host}:{port} ({err.strerror}); choose another --port or --host") from None
    return sock


def api_key_from(args: argparse.Namespace) -> str | None:
    """--api-key, else $LSLLM_API_KEY, else None (no auth); an empty or blank one is an error, never "no key"."""
    if args.api_key is not None:
        if not args.api_key.strip():
            raise ConfigError('--api-key is empty (an unset variable in --api-key "$KEY"?); give a non-empty key, '
                              "or leave --api-key out to serve without one")
        return args.api_key
    key = os.environ.get(API_KEY_ENV)
    if key is not None and not key.strip():
        raise ConfigError(f"{API_KEY_ENV} is set but empty; set it to a non-empty key, "
                          f"or unset it (unset {API_KEY_ENV}) to serve without one")
    return key


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    return ServeSettings(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_texts=args.max_texts,
                         max_body_bytes=args.max_body_bytes, oversize=args.oversize, body_timeout_s=args.body_timeout,
                         header_timeout_s=args.header_timeout, api_key=api_key_from(args))


def header_timeout_protocol(timeout_s: float, base: type[asyncio.Protocol] | None = None) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (`base`, default the one uvicorn picks: httptools or h11) with a
    deadline for request heads: a connection that has not sent a complete request line and headers
    within `timeout_s` of opening, or of its previous answer, is closed.

    uvicorn has no such deadline: its keep-alive timer stops at the first byte, so a client that
    sends "GET /hea" (or nothing, or a header a byte at a time) holds its connection forever. The
    body has its own deadline in the app (`BodyLimit`, --body-timeout), and a request being
    answered is never cut: the timer runs only while no request is in progress.
    """
    if base is None:
        from uvicorn.protocols.http.auto import AutoHTTPProtocol as base

    class HeaderTimeout(base):  # type: ignore[misc, valid-type]
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._watch_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _awaiting_head(self) -> bool:
            # uvicorn makes a new cycle once a request's headers are complete; the last one answered: none in progress
            return (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing() \
                and self.transport.get_protocol() is self  # a websocket upgrade replaces this protocol

        def _watch_head(self) -> None:
            if not self._awaiting_head():
                self._stop_head_timer()
            elif self._head_timer is None:  # not re-armed by more bytes: trickling a header does not extend it
                self._head_timer = self.loop.call_later(timeout_s, self._head_timed_out)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._awaiting_head():
                logger.info("closing %s: no complete request line and headers within %g s (--header-timeout)",
                            "{}:{}".format(*self.client) if self.client else "a connection", timeout_s)
                self.transport.close()

    HeaderTimeout.__name__ = HeaderTimeout.__qualname__ = f"HeaderTimeout{base.__name__}"
    return HeaderTimeout


def uvicorn_config(app: Any, settings: ServeSettings, verbose: bool = False) -> Any:
    """The `uvicorn.Config` of `lsllm serve` for `app`: quiet unless verbose, the header deadline, graceful stop."""
    import uvicorn

    return uvicorn.Config(app, log_level="info" if verbose else "warning", access_log=verbose, timeout_graceful_shutdown=10,
                          http=header_timeout_protocol(settings.header_timeout_s))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)  # first: a bad flag (an empty --api-key, --threads 0) is an error before any work
    inference = InferenceSettings.from_args(args)

    import uvicorn

    from lsllm.serve.app import app_from_run

    warning = bind_warning(args.host, settings.api_key)
    if warning:
        sys.stderr.write(warning + "\n")
    sock = bind_socket(args.host, args.port)
    try:
        app = app_from_run(args.run_dir, settings, max_length=args.max_length, inference=inference)  # applies --threads
        config = uvicorn_config(app, settings, verbose=bool(getattr(args, "verbose", False)))
        host = f"[{args.host}]" if ":" in args.host else args.host
        backend = app.state.classifier.backend
        sys.stderr.write(f"serving {args.run_dir} with {backend} on http://{host}:{args.port} (API docs at /docs; Ctrl+C stops)\n")
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its graceful shutdown: the normal way to stop
            sys.stderr.write("server stopped\n")
    finally:
        sock.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lsllm.serve RUN_DIR ...`: the same command without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="python -m lsllm.serve", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests and progress")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return cmd_serve(args)
    except LsllmError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    except KeyboardInterrupt:
        return 130

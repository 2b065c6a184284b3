"""`lsllm serve RUN_DIR`: the prediction server's command line.

    lsllm serve runs/sst2-...                                  # http://127.0.0.1:8000, docs at /docs
    LSLLM_API_KEY=secret lsllm serve runs/conll03-... --host 0.0.0.0 --port 9000
    lsllm serve runs/sst2-... --max-batch-size 64 --max-wait-ms 10 --oversize reject

The socket is bound here, before the model loads, so a taken port is a one-line error instead
of a traceback after a minute of loading; uvicorn then serves on that socket.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Sequence

from lsllm.errors import ConfigError, LsllmError
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
    serve.add_argument("run_dir", help="a finished `lsllm train` output directory")
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
    serve.add_argument("--api-key", default=None,
                       help=f"require 'Authorization: Bearer KEY' on /predict and /info (prefer env {API_KEY_ENV}: "
                            "command lines are visible to other users)")
    serve.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default=None,
                       help="weights dtype (default: the run's)")
    serve.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: the best available)")
    serve.add_argument("--max-batch-tokens", type=int, default=None,
                       help="tokens per forward pass within a model call (default: the classifier's 2048; inputs are "
                            "packed end to end in one row, so no compute goes to padding)")
    serve.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: torch's choice; 1 avoids thread sync stalls on busy machines)")


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


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    return ServeSettings(max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_texts=args.max_texts,
                         max_body_bytes=args.max_body_bytes, oversize=args.oversize, body_timeout_s=args.body_timeout,
                         api_key=args.api_key or os.environ.get(API_KEY_ENV) or None)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lsllm.hardware import configure_threads
    from lsllm.serve.app import app_from_run

    settings = settings_from_args(args)
    configure_threads(args.threads)  # before binding: a bad --threads is a one-line error, a busy machine a warning
    warning = bind_warning(args.host, settings.api_key)
    if warning:
        sys.stderr.write(warning + "\n")
    sock = bind_socket(args.host, args.port)
    try:
        app = app_from_run(args.run_dir, settings, max_length=args.max_length, dtype=args.dtype, device=args.device,
                           max_batch_tokens=args.max_batch_tokens)
        verbose = bool(getattr(args, "verbose", False))
        config = uvicorn.Config(app, log_level="info" if verbose else "warning", access_log=verbose,
                                timeout_graceful_shutdown=10)
        host = f"[{args.host}]" if ":" in args.host else args.host
        sys.stderr.write(f"serving {args.run_dir} on http://{host}:{args.port} (API docs at /docs; Ctrl+C stops)\n")
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

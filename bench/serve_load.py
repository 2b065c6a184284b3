"""Load test of `lsllm serve`: requests/s and latency at 1, 8 and 32 concurrent clients, on loopback only.

    python bench/serve_load.py --run /tmp/serve-run              # starts the server on a free 127.0.0.1 port
    python bench/serve_load.py --url http://127.0.0.1:8000 --api-key KEY
    python bench/serve_load.py --run RUN --concurrency 1,8,32 --requests 256 --seconds 60

Every level sends at most --requests requests and stops early after --seconds; each request
carries --texts-per-request texts taken in turn from the bundled SST-2 sample (or --texts FILE,
one per line). Each client sends its next request as soon as its previous answer arrives, so
concurrency 1 is the one-at-a-time baseline and the ratio of the others to it is what
micro-batching buys. Any non-200 answer or transport error counts as an error: all are reported
and the exit status is 1 if there was one.

Writes bench/results/serve_load.json atomically (date, machine, command, server /info, one row
per level) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _common import cpu_info, write_json_atomic  # noqa: E402

REPO = HERE.parent
SAMPLE = REPO / "src" / "lsllm" / "resources" / "sst2-sample" / "validation.tsv"


def load_texts(path: Path | None) -> list[str]:
    if path is not None:
        texts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:  # the bundled sample: header "text<TAB>label"
        texts = [line.rpartition("\t")[0] for line in SAMPLE.read_text().splitlines()[1:] if line.strip()]
    if not texts:
        raise SystemExit(f"{path or SAMPLE}: no texts")
    return texts


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"--url {url}: this benchmark only talks to loopback servers (127.0.0.1, ::1, localhost)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m lsllm.serve RUN` on a free loopback port, stopped with Ctrl+C (SIGINT) on exit."""

    def __init__(self, run: Path, extra: list[str], startup_timeout: float, prefix: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="serve-load-", suffix=".log", delete=False)
        command = [*(prefix or []), sys.executable, "-m", "lsllm.serve", str(run), "--host", "127.0.0.1",
                   "--port", str(self.port), *extra]
        env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        env.pop("LSLLM_API_KEY", None)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + startup_timeout
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with status {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not answer /health within {startup_timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.5)

    def tail(self, n: int = 20) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text().splitlines()[-n:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


class Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: the leanest client that Python has.

    httpx measured the client, not the server: on the 2-core test machine its AsyncClient topped
    out near 140 requests/s on GET /health at 32 connections, where these raw streams reach
    about 3,000; every millisecond the client spends is taken from the server on the same cores.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", "Content-Type": "application/json",
                                                          **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        try:
            self.writer.write(f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await self.writer.drain()
            status = int((await self.reader.readline()).split()[1])
            fields = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                fields[name.strip().lower()] = value.strip()
            if fields.get("transfer-encoding", "").lower() == "chunked":
                content = b""
                while size := int((await self.reader.readline()).split(b";")[0], 16):
                    content += await self.reader.readexactly(size + 2)
                    content = content[:-2]
                await self.reader.readline()
            else:
                content = await self.reader.readexactly(int(fields.get("content-length", "0")))
            if fields.get("connection", "").lower() == "close":
                await self.close()
            return status, content
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


def lsllm_body(texts: list[str]) -> dict:
    return {"texts": texts}


def lsllm_records(answer: dict) -> list:
    return answer["predictions"]


async def run_level(url: str, headers: dict, texts: list[str], per_request: int, concurrency: int,
                    max_requests: int, seconds: float, path: str = "/predict", make_body=lsllm_body,
                    records=lsllm_records) -> dict:
    """`concurrency` clients, each sending its next request when the last one returns.

    ``path``, ``make_body(texts) -> JSON`` and ``records(answer) -> list`` (one per text) describe
    the API: `lsllm serve`'s /predict by default (bench/serve_vllm.py passes vLLM's /classify).
    """
    latencies: list[float] = []
    errors: list[str] = []
    counter = 0
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    start = time.perf_counter()
    deadline = start + seconds

    async def worker() -> None:
        nonlocal counter
        connection = Connection(host, port, headers)
        while counter < max_requests and time.perf_counter() < deadline:
            first = (counter * per_request) % len(texts)
            counter += 1
            body = json.dumps(make_body([texts[(first + k) % len(texts)] for k in range(per_request)])).encode()
            sent = time.perf_counter()
            try:
                status, content = await asyncio.wait_for(connection.post(path, body), timeout=120)
                if status != 200:
                    errors.append(f"HTTP {status}: {content[:200].decode(errors='replace')}")
                elif len(records(json.loads(content))) != per_request:
                    errors.append(f"wrong number of records for {per_request} texts")
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
                errors.append(f"{type(err).__name__}: {err}")
            latencies.append(time.perf_counter() - sent)
        await connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ok = len(latencies) - len(errors)
    ms = sorted(x * 1000 for x in latencies)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "seconds": round(elapsed, 3),
        "requests_per_s": round(ok / elapsed, 2),
        "texts_per_s": round(ok * per_request / elapsed, 2),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(statistics.quantiles(ms, n=100, method="inclusive")[98], 1) if len(ms) > 1 else round(ms[0], 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "max_ms": round(ms[-1], 1),
    }


def print_table(results: dict) -> None:
    print(f"\n{'clients':>8}{'requests':>10}{'errors':>8}{'req/s':>10}{'texts/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for row in results["levels"]:
        print(f"{row['concurrency']:>8}{row['requests']:>10}{row['errors']:>8}{row['requests_per_s']:>10.1f}"
              f"{row['texts_per_s']:>10.1f}{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}{row['max_ms']:>10.1f}")
    print(f"\nthroughput at {results['levels'][-1]['concurrency']} clients vs 1: {results['speedup_vs_1']}x; "
          f"errors: {results['errors_total']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--run", type=Path, help="a trained run: the benchmark starts `lsllm serve` on loopback for it")
    target.add_argument("--url", help="an already running server on loopback, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=os.environ.get("LSLLM_API_KEY"), help="for --url servers that need one")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts (default 1,8,32)")
    parser.add_argument("--requests", type=int, default=256, help="most requests per level (default 256)")
    parser.add_argument("--seconds", type=float, default=60.0, help="most seconds per level (default 60)")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--texts", type=Path, default=None, help="one text per line (default: the bundled SST-2 sample)")
    parser.add_argument("--warmup", type=int, default=16, help="untimed requests before the first level")
    parser.add_argument("--server-args", default="", help="extra flags for the started server, e.g. '--max-batch-size 64'")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "serve_load.json")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if not levels or min(levels) < 1 or args.requests < 1 or args.texts_per_request < 1:
        raise SystemExit("--concurrency, --requests and --texts-per-request must be positive")
    texts = load_texts(args.texts)

    server = None
    if args.run is not None:
        server = Server(args.run, args.server_args.split(), args.startup_timeout)
        url, headers = server.url, {}
    else:
        require_loopback(args.url)
        url, headers = args.url.rstrip("/"), ({"Authorization": f"Bearer {args.api_key}"} if args.api_key else {})
    try:
        info = httpx.get(f"{url}/info", headers=headers, timeout=10)
        if info.status_code != 200:
            raise SystemExit(f"{url}/info answered {info.status_code}: {info.text[:200]} (pass --api-key?)")
        asyncio.run(run_level(url, headers, texts, args.texts_per_request, max(levels), args.warmup, args.seconds))
        rows = []
        for concurrency in levels:
            row = asyncio.run(run_level(url, headers, texts, args.texts_per_request, concurrency, args.requests, args.seconds))
            print(f"{concurrency:>3} clients: {row['requests_per_s']:.1f} req/s, p50 {row['p50_ms']} ms, "
                  f"p99 {row['p99_ms']} ms, {row['errors']} errors", flush=True)
            rows.append(row)
    finally:
        if server is not None:
            server.stop()

    base = next((r for r in rows if r["concurrency"] == 1), rows[0])
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": cpu_info(),
        "command": shlex.join(["python", *sys.argv]),
        "target": str(args.run) if args.run else url,
        "server": info.json(),
        "texts_per_request": args.texts_per_request,
        "levels": rows,
        "errors_total": sum(r["errors"] for r in rows),
        "speedup_vs_1": round(rows[-1]["requests_per_s"] / base["requests_per_s"], 2) if base["requests_per_s"] else None,
    }
    write_json_atomic(args.output, results)
    print_table(results)
    print(f"written to {args.output}")
    for row in rows:
        for sample in row["error_samples"]:
            print(f"error at {row['concurrency']} clients: {sample}", file=sys.stderr)
    return 1 if results["errors_total"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Limits and batching of one server: kept apart from the app so the CLI parser stays light."""

from __future__ import annotations

from dataclasses import dataclass

from lsllm.errors import ConfigError

OVERSIZE = ("truncate", "reject")


@dataclass
class ServeSettings:
    """Limits and batching of one server; every field is a `lsllm serve` flag."""

    max_batch_size: int = 32
    """Most inputs per model call; concurrent requests are merged up to this."""
    max_wait_ms: float = 5.0
    """Longest a request waits for others to join its batch."""
    max_texts: int = 256
    """Most texts (or token lists) in one request; more is a 422."""
    max_body_bytes: int = 1_000_000
    """Largest request body; more is a 413."""
    oversize: str = "truncate"
    """Inputs over max_length tokens: "truncate" (sequence models; token models use windows) or "reject" (413)."""
    api_key: str | None = None
    """When set, every path but /health, / and the docs needs `Authorization: Bearer <key>`, checked first."""
    body_timeout_s: float = 30.0
    """Longest a request body may take to arrive; slower is a 408 (a stalled client frees its connection)."""
    header_timeout_s: float = 10.0
    """Longest a connection may take to send a complete request line and headers, counted from its opening
    or its previous answer; slower is closed. Enforced by `lsllm serve`'s uvicorn setup, not by the app."""

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_texts", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name, flag in (("body_timeout_s", "--body-timeout"), ("header_timeout_s", "--header-timeout")):
            if not 0 < getattr(self, name) < float("inf"):
                raise ConfigError(f"{flag} must be a positive number of seconds, got {getattr(self, name)}")
        if not 0 <= self.max_wait_ms < float("inf"):
            raise ConfigError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
        if self.oversize not in OVERSIZE:
            raise ConfigError(f"--oversize must be truncate or reject, got {self.oversize!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("--api-key is empty; give a non-empty key or leave it out")

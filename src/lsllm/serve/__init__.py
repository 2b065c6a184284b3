"""`lsllm serve`: a FastAPI prediction server for trained runs, with micro-batching.

    from lsllm.serve import ServeSettings, app_from_run
    app = app_from_run("runs/sst2-...", ServeSettings(max_batch_size=16))   # then uvicorn.run(app)

See docs/serving.md for the endpoints, limits, auth and load numbers. The names below are
imported on first use, so `lsllm --help` does not pay for FastAPI and torch.
"""

from typing import Any

_EXPORTS = {
    "ServeSettings": "lsllm.serve.settings",
    "create_app": "lsllm.serve.app",
    "app_from_run": "lsllm.serve.app",
    "MicroBatcher": "lsllm.serve.batching",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lsllm.serve' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""The package version, in a leaf module: every module that records it imports it from here, not from `lsllm`."""

__version__ = "0.1.0"

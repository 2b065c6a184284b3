"""User-facing errors: one line that names the file/line or setting and says what to do.

The CLI prints `error: <message>` for these and exits with status 2; anything else is a bug
and keeps its traceback.
"""


class LsllmError(Exception):
    """Base class of every error a user can fix by changing input, flags or environment."""


class ConfigError(LsllmError):
    """An invalid or impossible combination of settings."""


class DataError(LsllmError):
    """Bad or missing data: message names the file and line and the fix."""


class ModelError(LsllmError):
    """A model that cannot be resolved, loaded or configured as asked."""

"""Every error the connector raises, with its intent in its type.

The engine decides what to do with a failed step from the error's class alone:

| error                | what the ledger does                         | who acts          |
|----------------------|----------------------------------------------|-------------------|
| ``RetryableError``   | step -> ``failed``, retried at a backoff time | nobody (automatic) |
| ``PermanentError``   | step -> ``dead`` with ``what_to_do``          | a person, then replay |
| ``SkippableError``   | step -> ``skipped`` with the reason           | nobody            |
| ``PausedError``      | steps stay ``pending``, no attempt counted; the system's other steps wait this pass | a person (reconnect) |
| ``ConfigError``      | the command stops, exit code 2               | whoever wrote the config |

In-request retries (429, 5xx, timeouts) happen inside adapters with
tenacity; only when those are spent does a ``RetryableError`` reach the
engine (DESIGN.md "Two retry layers, never mixed").
"""

from __future__ import annotations


class O2CError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(O2CError):
    """The configuration is wrong; ``key`` names the setting, ``fix`` says what to do."""

    def __init__(self, key: str, problem: str, fix: str):
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"config error at '{key}': {problem}. Fix: {fix}")


class SQLiteOnlyError(O2CError):
    """A feature that needs the ledger to be a SQLite file was asked of a PostgreSQL ledger."""

    def __init__(self, feature: str, fix: str = "run it against a SQLite ledger (ledger: path/to/o2c.db)"):
        self.feature, self.fix = feature, fix
        super().__init__(f"{feature} needs a SQLite ledger; this one is PostgreSQL. Fix: {fix}")


class StepError(O2CError):
    """A step failed; ``what_to_do`` is the sentence an admin reads."""

    def __init__(self, message: str, *, what_to_do: str = "", system: str | None = None,
                 status: int | None = None, code: str | None = None):
        self.message, self.what_to_do = message, what_to_do
        self.system, self.status, self.code = system, status, code
        super().__init__(message)


class RetryableError(StepError):
    """Transient: rate limit, 5xx, timeout, connection refused. Try again later."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PermanentError(StepError):
    """Retrying cannot help until a person changes something (mapping, data, credentials)."""


class SkippableError(StepError):
    """Nothing to do for this step, by rule (e.g. no email and the rule says skip)."""


class PausedError(StepError):
    """The target cannot be used until a person acts (reconnect); steps wait, no retry is spent."""


class SourceError(O2CError):
    """A store could not be read; the cursor does not move."""

    def __init__(self, store: str, message: str, *, retryable: bool = True):
        self.store, self.retryable = store, retryable
        super().__init__(f"{store}: {message}")


class MappingError(PermanentError):
    """A source payload could not be turned into a canonical order."""

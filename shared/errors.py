"""The one error tree of Shardline, grouped by who is at fault.

::

    ShardlineError
    ├── ConfigError                the settings are invalid or incomplete (names fields only)
    ├── InputError                 the caller's input or spec cannot be used
    │   ├── SpecError              a RunSpec or option is invalid
    │   ├── AccessError            a location the worker's settings do not let callers use
    │   └── InputFileError         the input file as a whole is unusable (missing, unreadable)
    ├── ProviderError              the provider answered with an error (keeps code/status/message)
    │   ├── ProviderClientError    4xx: our request or our key is wrong; not retried
    │   │   ├── AuthError          401/403: key missing, invalid or lacking access
    │   │   ├── NotFoundError      404: the file or job does not exist (for this key)
    │   │   └── RateLimitError     429 RESOURCE_EXHAUSTED: retried after ``retry_delay``
    │   ├── ProviderServerError    5xx: retried with backoff
    │   ├── ProviderConnectionError the connection failed or timed out: retried
    │   └── UploadStateError       the upload session is gone or out of step: restart it
    ├── StorageError               object storage failed
    │   ├── ObjectNotFoundError    the object does not exist
    │   └── ObjectExistsError      create-if-absent lost the race
    ├── RunError                   the run's records are inconsistent or it cannot proceed
    │   ├── RunNotFoundError       no run with that id or output location
    │   └── PoisonMessageError     a task message killed its worker again and again: parked
    └── RetryLater                 not a failure: wait (countdown) and run the step again

Bad input *lines* are not errors: they are rejected with a reason in ``rejected.jsonl``.
"""

from __future__ import annotations


class ShardlineError(Exception):
    """Root of every error Shardline raises on purpose."""


class ConfigError(ShardlineError):
    """The settings are invalid or incomplete (a bad value, no API key).

    The message names the variables, never their values: a malformed variable may hold a
    key (``SHARDLINE_API_KEYS``) and the message reaches the terminal and worker logs.
    """


class InputError(ShardlineError):
    """The caller's input cannot be used; retrying will not help."""


class SpecError(InputError):
    """A RunSpec or one of its options is invalid."""


class AccessError(InputError):
    """An input or output outside the allowed prefixes, on the deny list, or taken by another
    run (see ``shared.access``); also a task whose run id does not match its output."""


class InputFileError(InputError):
    """The input file as a whole is unusable; names the file and the reason."""

    def __init__(self, uri: str, reason: str | None = None) -> None:
        # ``args`` is the one message: a caller without Shardline installed gets Celery's
        # stand-in class with that text (not a tuple), and one that has it rebuilds this
        # class from the message alone (``reason`` None: ``uri`` is the whole message).
        if reason is None:
            uri, _, reason = uri.partition(": ")
        super().__init__(f"{uri}: {reason}")
        self.uri = uri
        self.reason = reason


class ProviderError(ShardlineError):
    """The provider answered with an error; its code, status and message are kept verbatim."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: str | None = None,
        retry_delay: float | None = None,
        details: list[object] | None = None,
    ) -> None:
        super().__init__(f"{code} {status}: {message}" if code is not None else message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_delay = retry_delay
        self.details = details or []


class ProviderClientError(ProviderError):
    """A 4xx answer: the request or the key is wrong; sending it again will not help."""


class AuthError(ProviderClientError):
    """401/403: the key is missing, invalid, or may not touch this resource."""


class NotFoundError(ProviderClientError):
    """404: the file or job does not exist, or belongs to another key."""


class RateLimitError(ProviderClientError):
    """429 RESOURCE_EXHAUSTED: quota exceeded; retry after ``retry_delay`` seconds."""

    retryable = True


class ProviderServerError(ProviderError):
    """A 5xx answer: the provider failed; retried with backoff."""

    retryable = True


class ProviderConnectionError(ProviderError):
    """The connection failed, dropped or timed out before an answer; retried."""

    retryable = True


class UploadStateError(ProviderError):
    """The resumable upload session is gone or disagrees with us; start a new session."""


class StorageError(ShardlineError):
    """Object storage failed."""


class ObjectNotFoundError(StorageError):
    """The object does not exist."""


class ObjectExistsError(StorageError):
    """A create-if-absent found the object already there."""


class RunError(ShardlineError):
    """The run's records are inconsistent, or the run cannot proceed."""


class RunNotFoundError(RunError):
    """No run with that id or output location."""


class PoisonMessageError(RunError):
    """A task message killed its worker again and again; it was parked, not run again."""


class RetryLater(ShardlineError):  # noqa: N818 (a request to wait, not an error)
    """Not a failure: the step cannot proceed yet (a quota, a budget, a job still running).

    Tasks turn it into a countdown retry, so no worker ever sleeps waiting.
    """

    def __init__(
        self, reason: str, countdown: float, *, carry: dict[str, int] | None = None
    ) -> None:
        super().__init__(f"{reason} (retry in {countdown:.1f}s)")
        self.reason = reason
        self.countdown = countdown
        #: Keyword arguments for the next run of the step (what it already knows).
        self.carry = carry or {}

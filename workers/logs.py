"""Worker logs: every line a task logs names its run, shard and attempt; no API key is written.

Wiring (:func:`connect`, called once by ``workers.app``), all through Celery signals:

- ``task_prerun``/``task_postrun`` bind the running task's ids (:class:`TaskFields`, read
  from its arguments by parameter name: ``run_id``, ``shard``, ``attempt``) in a context
  variable for the duration of the task. Context variables are per thread, so this holds
  with the thread pool as with prefork.
- ``after_setup_logger``/``after_setup_task_logger`` (the ``celery worker`` and ``celery
  beat`` commands) give every handler Celery made two filters, :class:`TaskContextFilter`
  (adds the ids to each record) and :class:`RedactFilter` (replaces every configured key
  with ``[redacted]``), and a formatter: one JSON object a line with
  ``SHARDLINE_LOG_JSON=1`` (:class:`JsonFormatter`), else Celery's own text with
  ``run=... shard=... attempt=...`` appended to task lines.

Keys never reach a log line by design (they live in ``SecretStr`` and an HTTP header); the
redaction is defence in depth against a library or an error message that quotes one.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
from celery import Task, signals

from shared.settings import ProviderName, Settings

REDACTED = "[redacted]"
#: The record attributes :class:`TaskContextFilter` sets (None outside a task).
FIELDS = ("task", "task_id", "run_id", "shard", "attempt")


@dataclass(frozen=True)
class TaskFields:
    """What identifies the work behind a log line."""

    task: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    shard: int | None = None
    attempt: int | None = None


_current: ContextVar[TaskFields | None] = ContextVar("shardline_task_fields", default=None)
_tokens: dict[str, Token[TaskFields | None]] = {}
_tokens_lock = threading.Lock()
_signatures: dict[str, inspect.Signature | None] = {}


def current_fields() -> TaskFields | None:
    """The ids bound for the task running in this thread, if any."""
    return _current.get()


@contextmanager
def bound(fields: TaskFields) -> Iterator[None]:
    """Bind ``fields`` for the block (what the signals do around a task)."""
    token = _current.set(fields)
    try:
        yield
    finally:
        _current.reset(token)


def _signature(task: Task) -> inspect.Signature | None:
    name = str(task.name)
    if name not in _signatures:
        try:
            _signatures[name] = inspect.signature(task.run)
        except (TypeError, ValueError):
            _signatures[name] = None
    return _signatures[name]


def task_fields(
    task: Task, task_id: str | None, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None
) -> TaskFields:
    """The ids in a task call, found by parameter name so that any task can carry them."""
    named: dict[str, Any] = {}
    signature = _signature(task)
    if signature is not None:
        try:
            named = dict(signature.bind_partial(*(args or ()), **(kwargs or {})).arguments)
        except TypeError:
            named = {}
    run_id, shard, attempt = named.get("run_id"), named.get("shard"), named.get("attempt")
    return TaskFields(
        task=str(task.name),
        task_id=task_id,
        run_id=run_id if isinstance(run_id, str) else None,
        shard=shard if isinstance(shard, int) else None,
        attempt=attempt if isinstance(attempt, int) else None,
    )


def _on_task_prerun(
    task_id: str | None = None,
    task: Task | None = None,
    args: Iterable[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    **_: Any,
) -> None:
    if task is None or task_id is None:
        return
    token = _current.set(task_fields(task, task_id, args, kwargs))
    with _tokens_lock:
        _tokens[task_id] = token


def _on_task_postrun(task_id: str | None = None, **_: Any) -> None:
    with _tokens_lock:
        token = _tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        try:
            _current.reset(token)
        except ValueError:  # set in another context (should not happen): just clear
            _current.set(None)


class TaskContextFilter(logging.Filter):
    """Adds :data:`FIELDS` to every record (None outside a task), for formatters to use."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _current.get() or TaskFields()
        for name, value in asdict(fields).items():
            if not hasattr(record, name) or getattr(record, name) is None:
                setattr(record, name, value)
        return True


_EXCEPTION_FORMATTER = logging.Formatter()


class RedactFilter(logging.Filter):
    """Replaces each secret value with ``[redacted]`` in the message, traceback and stack.

    The message is rendered here (``msg % args``) so that a secret passed as an argument is
    caught too; the traceback is rendered here and kept in ``exc_text``, which formatters
    use instead of rendering it again.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first: a key that contains another is replaced whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: leave it to the handler's error reporting
            return True
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXCEPTION_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the task's ids, any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for name in FIELDS:
            entry[name] = getattr(record, name, None)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


class TaskTextFormatter(logging.Formatter):
    """Keeps the handler's own text format and appends the task's ids to task lines."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        run_id = getattr(record, "run_id", None)
        if run_id is None:
            return text
        parts = [f"run={run_id}"]
        for name in ("shard", "attempt"):
            value = getattr(record, name, None)
            if value is not None:
                parts.append(f"{name}={value}")
        return f"{text} [{' '.join(parts)}]"


def secret_values(settings: Settings) -> list[str]:
    """Every configured API key, the values no log line may contain."""
    pools = (settings.key_pool(name) for name in get_args(ProviderName))
    return [key.get_secret_value() for pool in pools for key in pool]


def instrument(logger: logging.Logger, settings: Settings) -> None:
    """Give each of ``logger``'s handlers the filters and the formatter (once)."""
    for handler in logger.handlers:
        if any(isinstance(f, RedactFilter) for f in handler.filters):
            continue
        handler.addFilter(TaskContextFilter())
        handler.addFilter(RedactFilter(secret_values(settings)))
        if settings.log_json:
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(TaskTextFormatter(handler.formatter or logging.Formatter()))


def connect(load_settings: Callable[[], Settings]) -> None:
    """Connect the signal receivers (idempotent); settings are read when logging is set up."""

    def on_setup_logger(logger: logging.Logger | None = None, **_: Any) -> None:
        if logger is not None:
            instrument(logger, load_settings())
        # httpx logs every request URL at INFO; a resumable upload's URL carries its
        # upload_id, which authorizes writing to that session. Keep it out of the logs.
        logging.getLogger("httpx").setLevel(logging.WARNING)

    signals.after_setup_logger.connect(
        on_setup_logger, weak=False, dispatch_uid="shardline.logs.logger"
    )
    signals.after_setup_task_logger.connect(
        on_setup_logger, weak=False, dispatch_uid="shardline.logs.task_logger"
    )
    signals.task_prerun.connect(_on_task_prerun, weak=False, dispatch_uid="shardline.logs.prerun")
    signals.task_postrun.connect(
        _on_task_postrun, weak=False, dispatch_uid="shardline.logs.postrun"
    )


__all__ = [
    "FIELDS",
    "REDACTED",
    "JsonFormatter",
    "RedactFilter",
    "TaskContextFilter",
    "TaskFields",
    "TaskTextFormatter",
    "bound",
    "connect",
    "current_fields",
    "instrument",
    "secret_values",
    "task_fields",
]

"""Where a run may read and write: the trust boundary between a caller and the workers.

Whoever can send a task (through the broker, or Flower's API, which sends tasks too) chooses
a run's ``input_uri`` and ``output_uri``, and the workers read and write them with their own
file permissions and cloud credentials. So every location a caller names is checked here,
when the run is registered and again by every task before it acts:

1. **The deny list**, which no setting lifts: ``/proc``, ``/sys``, ``/dev``, ``/etc``,
   ``/boot``, ``/run`` (systemd credentials and Docker/Kubernetes secrets live there), the
   secrets directory, ``SHARDLINE_STATE_URI`` (the run registry and idempotency claims), the
   schedule file, the Python installation the worker runs from (``sys.prefix``), and the
   cloud credential files the storage layer reads (``~/.aws``, ``~/.config/gcloud``, and the
   files ``AWS_SHARED_CREDENTIALS_FILE``, ``AWS_CONFIG_FILE``, ``AWS_WEB_IDENTITY_TOKEN_FILE``
   and ``GOOGLE_APPLICATION_CREDENTIALS`` name). An input may not lie inside one; an output
   may neither lie inside one nor contain one (an output of ``/`` or of the state's parent
   would write over them).
2. **The allowlists** ``SHARDLINE_INPUT_PREFIXES`` and ``SHARDLINE_OUTPUT_PREFIXES``
   (comma separated paths or URIs). A location is allowed when an allowed prefix contains
   it. When a list is empty, the default depends on the mode:

   - **embedded** (no broker: ``shardline run`` on one machine) allows every location that
     is not denied. The caller is the user running the process, with that user's own files
     and credentials: the worker can do nothing the user could not do directly.
   - **brokered** (``SHARDLINE_BROKER_URL`` set) allows nothing: a worker refuses every run
     until its operator lists the prefixes its callers may use. The CLI's ``submit`` checks
     with its own settings first (an early, clear error), the workers check with theirs.

3. **Outputs** never hold a ``_shardline`` segment: no run writes into another run's
   records. (Emptiness and overlap with other runs need storage: ``shared.pipeline.start``.)

Containment is checked on canonical locations, segment by segment:

- local paths are resolved (``Path.resolve``: symlinks followed, ``..`` and ``.`` removed),
  so a symlink inside an allowed prefix that points out of it is judged by its target, as
  the operating system would open it. ``/data/in`` contains ``/data/in/x`` but not
  ``/data/inbox``;
- ``s3://``, ``gs://`` and ``memory://`` locations are compared by bucket, then by key
  segments: ``s3://b/in`` contains ``s3://b/in/x.jsonl``, not ``s3://b/inbox/x.jsonl`` nor
  ``s3://other/in/x``. Empty, ``.`` and ``..`` segments are refused (object stores would take
  them literally; local storage would not).

What this does not stop: someone who can write inside an allowed prefix can plant a symlink
between this check and the open. That is a local user of the host, not a caller who can
only send tasks, and the check is repeated by every task.

Messages name the caller's own URI and the setting to change, never a setting's value.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict

from shared.errors import AccessError

if TYPE_CHECKING:
    from shared.settings import Settings

Scheme = Literal["file", "s3", "gs", "memory"]

#: Directories of the host that never hold a run's input or output, whatever the settings.
SYSTEM_DIRECTORIES = ("/proc", "/sys", "/dev", "/etc", "/boot", "/run")
#: Files and directories of cloud credentials, relative to the home directory.
HOME_CREDENTIALS = (".aws", ".config/gcloud")
#: Environment variables that name credential files the storage layer reads.
CREDENTIAL_FILE_VARIABLES = (
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
#: The segment that holds a run's records under its output (``shared.names``' layout).
RECORDS_SEGMENT = "_shardline"

_SCHEMES: dict[str, Scheme] = {"file": "file", "s3": "s3", "gs": "gs", "gcs": "gs",
                               "memory": "memory"}


class Location(BaseModel):
    """A canonical storage location: scheme, bucket (empty for local files), path segments."""

    model_config = ConfigDict(frozen=True)

    scheme: Scheme
    bucket: str = ""
    segments: tuple[str, ...] = ()

    def contains(self, other: Location) -> bool:
        """True when ``other`` is this location or lies under it (on segment boundaries)."""
        depth = len(self.segments)
        return (
            (self.scheme, self.bucket) == (other.scheme, other.bucket)
            and other.segments[:depth] == self.segments
        )

    def overlaps(self, other: Location) -> bool:
        """True when either location contains the other."""
        return self.contains(other) or other.contains(self)

    def ancestors(self) -> list[Location]:
        """Every location that strictly contains this one, nearest first."""
        return [
            Location(scheme=self.scheme, bucket=self.bucket, segments=self.segments[:depth])
            for depth in range(len(self.segments) - 1, -1, -1)
        ]

    def __str__(self) -> str:
        path = "/".join(self.segments)
        if self.scheme == "file":
            return f"/{path}"
        return f"{self.scheme}://{self.bucket}/{path}" if path else f"{self.scheme}://{self.bucket}"


def locate(uri: str) -> Location:
    """The canonical location of a path or URI (``ValueError`` if it is not one).

    Local paths are made absolute and resolved (symlinks, ``..``); ``~`` is expanded.
    Nothing else touches the disk or the network.
    """
    if not uri:
        raise ValueError("empty location")
    if "://" not in uri:
        return _local(Path(uri).expanduser())
    parts = urlsplit(uri)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"unsupported location {uri!r}: use a path, file://, s3://, gs://")
    if parts.query or parts.fragment:
        raise ValueError(f"location {uri!r} must not have a query or fragment")
    if scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise ValueError(f"file URI {uri!r} must be local (file:///path)")
        return _local(Path(unquote(parts.path)))
    if not parts.netloc or "@" in parts.netloc or ":" in parts.netloc:
        raise ValueError(f"location {scheme}://... must name a bucket, and only a bucket")
    stripped = parts.path.strip("/")
    segments = tuple(stripped.split("/")) if stripped else ()
    if any(segment in {"", ".", ".."} or "\x00" in segment for segment in segments):
        raise ValueError(f"location {uri!r} has an empty, '.' or '..' path segment")
    return Location(scheme=scheme, bucket=parts.netloc, segments=segments)


def _local(path: Path) -> Location:
    if "\x00" in str(path):
        raise ValueError("a path must not contain NUL")
    resolved = path.absolute().resolve()
    return Location(scheme="file", segments=resolved.parts[1:])


def parse_prefixes(value: str | Iterable[str]) -> list[str]:
    """A comma separated list of prefixes, each checked (absolute paths or URIs)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    prefixes = [item.strip() for item in items if item.strip()]
    for prefix in prefixes:
        if "://" not in prefix and not Path(prefix).expanduser().is_absolute():
            raise ValueError("a prefix must be an absolute path or a file://, s3://, gs:// URI")
        locate(prefix)
    return prefixes


def denied_locations(
    *,
    state_uri: str,
    secrets_dir: str | None,
    schedule_file: Path | None,
    environ: dict[str, str] | None = None,
) -> tuple[Location, ...]:
    """Everything no setting may open to callers (see the module docstring)."""
    env = os.environ if environ is None else environ
    local = [*SYSTEM_DIRECTORIES, sys.prefix, sys.base_prefix]
    home = env.get("HOME")
    if home:
        local.extend(str(Path(home) / name) for name in HOME_CREDENTIALS)
    local.extend(env[name] for name in CREDENTIAL_FILE_VARIABLES if env.get(name))
    if secrets_dir:
        local.append(secrets_dir)
    if schedule_file is not None:
        local.append(str(schedule_file))
    found = {locate(path) for path in local}
    found.add(locate(state_uri))
    return tuple(sorted(found, key=str))


class AccessPolicy(BaseModel):
    """The locations callers may use as inputs and outputs on this process.

    ``inputs``/``outputs`` of ``None`` allow every location that is not denied (the
    embedded default); an empty tuple allows none (the brokered default).
    """

    model_config = ConfigDict(frozen=True)

    inputs: tuple[Location, ...] | None
    outputs: tuple[Location, ...] | None
    denied: tuple[Location, ...]
    state: Location

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        def allowed(prefixes: list[str]) -> tuple[Location, ...] | None:
            if prefixes:
                return tuple(locate(prefix) for prefix in prefixes)
            return None if settings.embedded else ()

        return cls(
            inputs=allowed(settings.input_prefixes),
            outputs=allowed(settings.output_prefixes),
            denied=denied_locations(
                state_uri=settings.state_uri,
                secrets_dir=settings.secrets_directory,
                schedule_file=settings.schedule_file,
            ),
            state=locate(settings.state_uri),
        )

    def check_input(self, uri: str) -> Location:
        """The input's canonical location, or ``AccessError`` saying why it is refused."""
        where = _located("input_uri", uri)
        if any(denied.contains(where) for denied in self.denied):
            raise AccessError(f"input_uri {uri}: a protected location (system files, "
                              "secrets, Shardline's state or installation) no setting allows")
        if not _allowed(self.inputs, where):
            raise AccessError(f"input_uri {uri}: not under an allowed input prefix "
                              "(SHARDLINE_INPUT_PREFIXES)")
        return where

    def check_output(self, uri: str) -> Location:
        """The output's canonical location, or ``AccessError`` saying why it is refused."""
        where = _located("output_uri", uri)
        if RECORDS_SEGMENT in where.segments:
            raise AccessError(f"output_uri {uri}: inside a run's records ({RECORDS_SEGMENT}/)")
        if self.state.overlaps(where):
            raise AccessError(f"output_uri {uri}: overlaps Shardline's state "
                              "(SHARDLINE_STATE_URI): runs write elsewhere")
        if any(denied.overlaps(where) for denied in self.denied):
            raise AccessError(f"output_uri {uri}: a protected location (system files, "
                              "secrets, Shardline's state or installation) or one holding "
                              "such a location; no setting allows it")
        if not _allowed(self.outputs, where):
            raise AccessError(f"output_uri {uri}: not under an allowed output prefix "
                              "(SHARDLINE_OUTPUT_PREFIXES)")
        return where


def _located(field: str, uri: str) -> Location:
    try:
        return locate(uri)
    except ValueError as exc:
        raise AccessError(f"{field}: {exc}") from None


def _allowed(prefixes: tuple[Location, ...] | None, where: Location) -> bool:
    return prefixes is None or any(prefix.contains(where) for prefix in prefixes)

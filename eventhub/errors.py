"""The core of the exceptions eventhub raises.

One root, :class:`EventHubError`. "Not found" errors are also :class:`LookupError`.
Only :class:`TransientError` (and exceptions that are not eventhub's own) are retried
by delivery retry policies; every other eventhub error is permanent. Each class
says how it ends a command (``exit_code``) and an API request (``http_status``)::

    EventHubError                       exit 1, HTTP 500
     ├── UserError                      exit 2, HTTP 422: the caller's mistake
     │    ├── InvalidEvent              (also ValueError)
     │    │    └── EventTooLarge        its data is over the size limit
     │    ├── InvalidSubscription       (also ValueError)
     │    ├── ConfigError
     │    │    ├── ConfigProblems       every problem of one config file
     │    │    └── ModuleLoadError      a workflow or plugin file
     │    │         └── WorkflowLoadError
     │    ├── SubscriptionNotFound      (also LookupError)
     │    ├── DeadLetterNotFound        (also LookupError)
     │    └── NameNotFound              HTTP 404 (also LookupError)
     │         ├── IntegrationNotFound
     │         └── WorkflowNotFound
     ├── TransientError                 HTTP 503: worth retrying
     │    └── RunTimeout
     ├── StorageError                   the state database failed
     │    ├── StorageBusy, StorageFull, StorageIOError   (also TransientError)
     │    ├── StorageCorrupt
     │    └── StorageReadOnly
     │         └── StorageNeedsUpgrade
     ├── MissingDependency              HTTP 503 (also ImportError): the install hint
     ├── UndecodableEvent               a damaged row of the event log
     └── SkipEvent                      a handler's "acknowledge, do nothing"

The errors of a subsystem live beside it and hang from this tree:
:mod:`eventhub.http` (``HttpError``, ``HttpTransientError``, ``HostNotAllowed``),
:mod:`eventhub.auth` (``InvalidToken``, ``ReauthorizationRequired``, ``TokenNotFound``),
:mod:`eventhub.documents` (``SourceError``, ``SourceNotFound``, ``SyncInProgress``).
The five that were defined here before are still importable from here.

The text of every eventhub error (``str`` and ``repr``, so the CLI's one line, the
API's ``{"error": ...}`` and rendered tracebacks) has the secrets registered with
:func:`eventhub.redact.register_secret` replaced by ``[REDACTED]``.
"""

from __future__ import annotations

import importlib
import shlex
from typing import TYPE_CHECKING, Any, ClassVar

from .redact import redact_secrets

if TYPE_CHECKING:  # the errors that moved to their subpackages (see __getattr__)
    from .auth.jwt import InvalidToken as InvalidToken
    from .auth.oauth import ReauthorizationRequired as ReauthorizationRequired
    from .http.errors import HostNotAllowed as HostNotAllowed
    from .http.errors import HttpError as HttpError
    from .http.errors import HttpTransientError as HttpTransientError


class EventHubError(Exception):
    """Root of every error eventhub raises on purpose.

    Its outcomes are class attributes, which the CLI and the HTTP server look up
    (neither keeps a list of error classes):

    * ``exit_code``: the CLI's exit status (after the message's first line on
      standard error);
    * ``http_status``: the API's status, answered as ``{"error": ...}``;
    * ``public``: what an HTTP client is told instead of the message (None: the
      message itself). By default a client only learns that the server failed;
      the caller's mistakes and what is worth retrying say what they are;
    * ``http_retry_after``: the seconds an HTTP client is asked to wait before it
      tries again (``Retry-After``; None: no header).
    """

    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500
    public: ClassVar[str | None] = "internal server error"
    http_retry_after: ClassVar[int | None] = None

    def __str__(self) -> str:
        # At the time the text is shown, so that a secret registered after the
        # error was made is hidden too.
        return redact_secrets(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class UserError(EventHubError):
    """A mistake in what the user asked for: the CLI prints it on one line, exit 2."""

    exit_code = 2
    http_status = 422
    public: ClassVar[str | None] = None


class InvalidEvent(UserError, ValueError):
    """An event that cannot be stored. ``field`` names the offending attribute."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid event: {field}: {problem}")


class EventTooLarge(InvalidEvent):
    """An event whose encoded data is over the size limit (``[bus]
    max_data_bytes``): ``size`` and ``limit`` in bytes."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__("data", f"is {size} bytes, over the limit of {limit} bytes")


class InvalidSubscription(UserError, ValueError):
    """A subscription pattern, filter or option that cannot be compiled."""

    def __init__(self, what: str, problem: str) -> None:
        self.what = what
        self.problem = problem
        super().__init__(f"invalid subscription {what}: {problem}")


class ConfigError(UserError):
    """A setting that is missing, of the wrong type or out of range."""


class ConfigProblems(ConfigError):
    """Everything found wrong with one config file at once (``run --check``);
    ``problems`` holds one message per problem."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {'; '.join(problems)}")


class SubscriptionNotFound(UserError, LookupError):
    """No subscription with this name is known to the bus or the log."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no subscription named {name!r}")


class DeadLetterNotFound(UserError, LookupError):
    """A dead-letter id that is not in the dead-letter table."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        listed = ", ".join(str(i) for i in ids)
        super().__init__(f"no dead letter with id {listed}")


class MissingDependency(EventHubError, ImportError):
    """An optional dependency is not installed; the message carries the install hint."""

    http_status = 503
    public: ClassVar[str | None] = None

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"{package} is not installed: pip install 'eventhub[{extra}]'")


class TransientError(EventHubError):
    """A failure worth retrying (timeouts, rate limits, a busy database)."""

    http_status = 503
    public: ClassVar[str | None] = None
    http_retry_after = 1


class StorageError(EventHubError):
    """The state database failed: a fault of the storage, never of the caller.

    ``path`` is the database file and ``problem`` what SQLite said; the message
    adds what to do. HTTP clients are told ``public`` instead (no path), and
    asked to wait ``http_retry_after`` seconds (None: not worth retrying soon).
    """

    public = "the state database failed; the server log says why"
    http_retry_after: ClassVar[int | None] = None

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(self.describe())

    def describe(self) -> str:
        return f"state database {self.path}: {self.problem}"


class StorageBusy(StorageError, TransientError):
    """The state database stayed locked by another writer past the deadline."""

    public = "the state database is busy; try again later"
    http_retry_after = 1

    def __init__(self, path: str, waited: float) -> None:
        self.waited = waited
        super().__init__(path, f"stayed locked for {waited:.1f}s")

    def describe(self) -> str:
        return f"state database {self.path} {self.problem}"


class StorageFull(StorageError, TransientError):
    """The disk (or the database's size limit) is full: nothing more is written
    until space is freed; what was committed before is safe."""

    public = "the state database is full; try again later"
    http_retry_after = 30

    def describe(self) -> str:
        return (
            f"state database {self.path}: {self.problem}: free space on its file"
            " system, then try again (what was stored before is safe)"
        )


class StorageIOError(StorageError, TransientError):
    """The operating system failed a read or write of the state database."""

    public = "the state database cannot be read or written; try again later"
    http_retry_after = 5

    def describe(self) -> str:
        return (
            f"state database {self.path}: {self.problem} (the disk or file system"
            " failed a read or write): check them (free space, dmesg), then try again"
        )


class StorageCorrupt(StorageError):
    """The state database file is damaged (a page fails SQLite's checks, or the
    file is no longer a database). The message says how to recover it."""

    public = "the state database is damaged; the server log says what to do"

    def describe(self) -> str:
        damaged = shlex.quote(self.path)
        recovered = shlex.quote(self.path + ".recovered")
        return (
            f"state database {self.path} is damaged ({self.problem}): stop the"
            " processes using it, keep a copy of it, and recover what can be read:"
            f' sqlite3 {damaged} ".recover" | sqlite3 {recovered}'
            " (see docs/operations.md)"
        )


class StorageReadOnly(StorageError):
    """The state database cannot be written: the file, its folder or the file
    system is read-only for this process (or it was opened read-only)."""

    public = "the state database cannot be written; the server log says why"

    def describe(self) -> str:
        return (
            f"state database {self.path} is read-only for this process"
            f" ({self.problem}): give this user write access to the file and its"
            " folder"
        )


class StorageNeedsUpgrade(StorageReadOnly):
    """A database opened read-only lacks schema changes of this eventhub
    (``pending`` names them): it must be opened once with write access."""

    def __init__(self, path: str, pending: list[str]) -> None:
        self.pending = pending
        super().__init__(path, ", ".join(pending))

    def describe(self) -> str:
        return (
            f"state database {self.path} is open read-only and lacks schema changes"
            f" of this eventhub ({self.problem}: it was written by an older eventhub,"
            " or never used for this): run the command once as a user who may write"
            " it, which upgrades it"
        )


class UndecodableEvent(EventHubError):
    """A stored event that cannot be read back: its row in the state database is
    damaged (SQLite keeps no checksums of values). A server fault, never the
    caller's. ``sequence`` is its log position, ``problem`` says what is wrong."""

    public: ClassVar[str | None] = None  # the message says which row and what to do

    def __init__(self, sequence: int, problem: str) -> None:
        self.sequence = sequence
        self.problem = problem
        super().__init__(
            f"stored event {sequence} cannot be decoded: {problem} (the state"
            " database is damaged at this row: restore it from a backup, or repair"
            " the row and redrive its dead letters)"
        )


class SkipEvent(EventHubError):
    """Raised by a handler to acknowledge an event without handling it."""


def is_retryable(exc: BaseException) -> bool:
    """Whether a delivery that failed with ``exc`` may be retried.

    Exceptions from user code are retryable unless they are eventhub's own permanent
    errors; among eventhub's errors only :class:`TransientError` is.
    """
    if isinstance(exc, TransientError):
        return True
    return not isinstance(exc, EventHubError) and isinstance(exc, Exception)


class NameNotFound(UserError, LookupError):
    """Nothing of this kind is registered under this name; ``known`` lists what is."""

    http_status = 404
    kind = "thing"

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        self.known = known or []
        hint = f" (known: {', '.join(self.known)})" if self.known else ""
        super().__init__(f"no {self.kind} named {name!r}{hint}")


class IntegrationNotFound(NameNotFound):
    """No integration registered under this name."""

    kind = "integration"


class WorkflowNotFound(NameNotFound):
    """No workflow registered under this name."""

    kind = "workflow"


class ModuleLoadError(ConfigError):
    """A user module (workflow or plugin file) that cannot be imported; ``path``
    names the file."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class WorkflowLoadError(ModuleLoadError):
    """A workflow module that cannot be loaded."""


class RunTimeout(TransientError):
    """A workflow run went past its timeout."""

    def __init__(self, workflow: str, timeout: float) -> None:
        self.workflow = workflow
        self.timeout = timeout
        super().__init__(f"workflow {workflow!r} timed out after {timeout:g}s")


# Errors of the outgoing HTTP client and of credentials are defined beside them
# (eventhub.http.errors, eventhub.auth). Code written before they moved imports
# them from here: they are looked up when first asked for, by name, so that this
# module (layer 0) never imports the layers above it.
_MOVED = {
    "HttpError": "eventhub.http.errors",
    "HttpTransientError": "eventhub.http.errors",
    "HostNotAllowed": "eventhub.http.errors",
    "InvalidToken": "eventhub.auth.jwt",
    "ReauthorizationRequired": "eventhub.auth.oauth",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_MOVED})

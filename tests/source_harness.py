"""A document source under test together with what it reads: the Source contract
suite (tests/test_source_contract.py) drives every kind through this protocol.

A kind joins the suite with one entry in HARNESSES: a callable taking pytest's
``tmp_path`` (and the ``request``, for fixtures such as ``httpserver``) that returns
a :class:`Harness`. The harness owns the documents' home (a folder, a fake vendor
server on 127.0.0.1) and changes it as a person would at the vendor.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from eventhub.integrations.filesystem import FilesystemSource

from eventhub.documents import Source

from .fakes.confluence import ConfluenceHarness
from .fakes.gdrive import GDriveHarness
from .fakes.imap import IMAPHarness
from .fakes.jira import JiraHarness
from .fakes.notion import NotionHarness
from .fakes.s3 import S3Harness
from .fakes.sharepoint import SharePointHarness
from .fakes.slack import SlackHarness
from .fakes.sql import PostgreSQLHarness, SQLiteHarness


class Harness(Protocol):
    """What the contract suite needs of a source kind and its server.

    Documents are named by test-side keys (``"guide"``); :meth:`id_of` says which
    document id the source gives the document (a path, a content id, a page id).
    """

    #: The source kind (``kind = "..."``).
    kind: str

    def source(self) -> Source:
        """A new source named ``"contract"`` configured on this server: a new object
        at each call, as a sync in a new process would make."""
        ...

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        """Add the document, or edit it if it exists, with that last-change time
        (as the vendor would report it: servers with minute precision round it)."""
        ...

    def delete(self, key: str) -> None:
        """Delete the document at the vendor (to the trash, where there is one)."""
        ...

    def id_of(self, key: str) -> str:
        """The document id the source gives the document put as ``key``."""
        ...

    def fail_from_now(self, status: int = 500) -> None:
        """Make every later request fail: an answer with ``status`` (a server), an
        unreadable home (a folder), until :meth:`heal`."""
        ...

    def heal(self) -> None:
        """Undo :meth:`fail_from_now`."""
        ...

    @property
    def requests(self) -> int:
        """Requests served so far (0 for a source that makes none)."""
        ...


class FilesystemHarness:
    """A folder on the local disk, read by a ``filesystem`` source."""

    kind = "filesystem"

    def __init__(self, tmp_path: Path, request: Any = None) -> None:
        self.root = tmp_path / "share"
        self.root.mkdir()
        self._hidden = tmp_path / "share-away"
        self._paths: dict[str, str] = {}
        self._failing = False

    def source(self) -> Source:
        if self._hidden.exists():  # made while the share is there ...
            self._hidden.rename(self.root)
        source = FilesystemSource(path=self.root)
        source.name = "contract"
        if self._failing:  # ... which then goes away
            self.root.rename(self._hidden)
        return source

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        rel = self._paths.setdefault(key, f"{key}.md")
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# {title}\n\n{text}\n")
        os.utime(path, (updated_at.timestamp(), updated_at.timestamp()))

    def delete(self, key: str) -> None:
        (self.root / self._paths[key]).unlink()

    def id_of(self, key: str) -> str:
        return self._paths[key]

    def fail_from_now(self, status: int = 500) -> None:
        # A share that goes away under a running source (root reads anything,
        # so taking permissions away would not do).
        self._failing = True

    def heal(self) -> None:
        self._failing = False
        if self._hidden.exists():
            self._hidden.rename(self.root)

    @property
    def requests(self) -> int:
        return 0


#: Every source kind in the contract suite: kind -> harness factory.
HARNESSES: dict[str, Callable[..., Harness]] = {
    "confluence": ConfluenceHarness,
    "filesystem": FilesystemHarness,
    "gdrive": GDriveHarness,
    "imap": IMAPHarness,
    "jira": JiraHarness,
    "notion": NotionHarness,
    "s3": S3Harness,
    "sharepoint": SharePointHarness,
    "slack": SlackHarness,
    "sql": SQLiteHarness,
    "sql-postgresql": PostgreSQLHarness,
}

"""Damage done to state database files for tests, as a failing disk or a stray
write does it: bytes flipped in a page of a real database."""

import sqlite3
from pathlib import Path

from eventhub.testing import make_hub

# Where to flip bytes: a page and an offset in it. Page 1 holds the file header
# (its first 100 bytes) and the root of the schema table.
DAMAGE = {
    # The header's page size, format numbers and counters: not a database.
    "header": (1, 16),
    # The schema table's page header: SQLite cannot read the schema.
    "schema": (1, 100),
    # The page header of the events table's root page.
    "events": ("events", 0),
}


def seeded_database(folder: Path, name: str = "hub.db", events: int = 30) -> Path:
    """A closed state database with ``events`` events of 300 bytes each (the events
    table spans several pages), its write-ahead log checkpointed into the file."""
    with make_hub(folder, name) as hub:
        for i in range(events):
            hub.bus.publish("a.b", {"i": i, "pad": "x" * 300})
    return folder / name


def root_page(path: Path, name: str) -> int:
    """The page number of a table's or index's root (read before any damage)."""
    conn = sqlite3.connect(path)
    try:
        (page,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)
        ).fetchone()
    finally:
        conn.close()
    return int(page)


def flip(path: Path, page: int | str, offset: int, count: int = 8) -> None:
    """Invert ``count`` bytes at ``offset`` of ``page`` (a number, or the name of
    the table or index whose root page it is)."""
    if isinstance(page, str):
        page = root_page(path, page)
    with path.open("r+b") as file:
        page_size = int.from_bytes(file.read(18)[16:18], "big")
        file.seek((page - 1) * page_size + offset)
        data = file.read(count)
        file.seek((page - 1) * page_size + offset)
        file.write(bytes(b ^ 0xFF for b in data))


def damage(path: Path, kind: str) -> Path:
    """Damage a database as :data:`DAMAGE` describes ``kind``."""
    page, offset = DAMAGE[kind]
    flip(path, page, offset)
    return path


def garble_a_name(path: Path) -> Path:
    """Make a table name in the schema no longer UTF-8 text (as one flipped bit in
    the schema's text does): SQLite's error then quotes bytes that are not text."""
    data = bytearray(path.read_bytes())
    at = data.index(b"_sqlite_migrations")
    data[at + 3] = 0xD9  # "_sq\xd9ite_migrations"
    path.write_bytes(bytes(data))
    return path

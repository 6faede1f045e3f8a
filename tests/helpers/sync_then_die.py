"""Child process: sync a folder, SIGKILL itself right after the SQLite commit,
before the FAISS cache is saved.

Usage: sync_then_die.py DB FOLDER
"""

import os
import signal
import sys

from eventhub.integrations.filesystem import FilesystemSource

from eventhub.documents.embeddings import HashEmbedder
from eventhub.documents.service import DocumentService
from eventhub.documents.store import DocumentIndex
from eventhub.testing import make_hub


def die(self):
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    db, folder = sys.argv[1], sys.argv[2]
    with make_hub(os.path.dirname(db), os.path.basename(db)) as hub:
        hub.register_integration("docs", FilesystemSource(path=folder))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        DocumentIndex.save = die  # the commit happened; the cache save never will
        hub.documents.sync("docs")


if __name__ == "__main__":
    main()

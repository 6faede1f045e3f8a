"""Child process: read hostile documents under a memory and a CPU-time limit, so that
a regression fails (MemoryError, SIGXCPU) instead of eating the machine.

Usage:
    bounded.py MEMORY_MB CPU_SECONDS extract FOLDER LIMITS_JSON
        prints {file name: {"text": characters} or {"skipped": reason}}; the limits
        are {file name: {limit: value}} (defaults for the files not named)
    bounded.py MEMORY_MB CPU_SECONDS sync FOLDER HUB_FOLDER LIMITS_JSON
        syncs FOLDER twice, prints {"reports": [...], "state": ..., "indexed": [...]}
    bounded.py MEMORY_MB CPU_SECONDS peak FILE LIMITS_JSON
        reads FILE into memory, then extracts it once for each limits in the list
        LIMITS_JSON, printing a list of {"title", "text", "grew"} or {"skipped"}:
        "grew" is how far the peak resident memory rose while extracting (bytes)

The JSON is the last line of standard output (log lines may come before).
"""

import resource
import sys


def limit(memory_mb: int, cpu_seconds: int) -> None:
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))


def extract_all(folder: str, limits: dict) -> dict:
    from pathlib import Path

    from eventhub.documents.extract import ExtractionError, ExtractionLimits, extract

    outcome = {}
    for path in sorted(Path(folder).iterdir()):
        try:
            given = ExtractionLimits(**limits.get(path.name, {}))
            found = extract(path, path.name, limits=given)
            outcome[path.name] = {"text": len(found.text)}
        except ExtractionError as exc:
            outcome[path.name] = {"skipped": exc.reason}
    return outcome


def peak(path: str, limits: list) -> list:
    from eventhub.documents.extract import ExtractionError, ExtractionLimits, extract

    with open(path, "rb") as handle:
        raw = handle.read()
    outcome = []
    for given in limits:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            found = extract(raw, path, limits=ExtractionLimits(**given))
        except ExtractionError as exc:
            outcome.append({"skipped": exc.reason})
            continue
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        grew = (after - before) * 1024  # kilobytes on Linux
        outcome.append({"title": found.title, "text": found.text, "grew": grew})
    return outcome


def sync_twice(folder: str, hub_folder: str, limits: dict) -> dict:
    from eventhub.integrations.filesystem import FilesystemSource

    from eventhub.documents.embeddings import HashEmbedder
    from eventhub.documents.service import DocumentService
    from eventhub.testing import make_hub

    with make_hub(hub_folder) as hub:
        hub.register_integration("docs", FilesystemSource(path=folder, **limits))
        hub.documents = DocumentService(hub, embedder=HashEmbedder(64))
        reports = [hub.documents.sync("docs").to_dict() for _ in range(2)]
        return {
            "reports": reports,
            "state": hub.documents.engine.state("docs"),
            "indexed": sorted(hub.documents.index.document_ids("docs")),
        }


def main() -> None:
    import json

    memory_mb, cpu_seconds, command, *args = sys.argv[1:]
    limit(int(memory_mb), int(cpu_seconds))
    limits = json.loads(args[-1])
    if command == "extract":
        result = extract_all(args[0], limits)
    elif command == "peak":
        result = peak(args[0], limits)
    else:
        result = sync_twice(args[0], args[1], limits)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

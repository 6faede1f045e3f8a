"""Child process: publishes COUNT events one at a time, tagged with its own id.

Usage: publisher.py DB PUBLISHER_ID COUNT
"""

import sys

from eventhub import Hub


def main() -> None:
    db, publisher, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Hub(db, load_entrypoints=False, source=f"/publisher/{publisher}") as hub:
        for n in range(count):
            hub.bus.publish("load.item", {"n": n, "publisher": publisher})


if __name__ == "__main__":
    main()

"""Child process: a durable subscriber writing each handled event's number to a file.

Usage: consumer.py DB OUTPUT SUBSCRIPTION [PATTERN]
Writes "ready" to OUTPUT.ready once its workers run; runs until killed or SIGTERM.
"""

import os
import signal
import sys
import threading

from eventhub import Hub


def main() -> None:
    db, output, name = sys.argv[1:4]
    pattern = sys.argv[4] if len(sys.argv) > 4 else "load.*"
    fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def handle(event):
        os.write(fd, f"{event.data['n']}\n".encode())

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Hub(db, load_entrypoints=False, batch_size=50) as hub:
        hub.bus.subscribe(pattern, handle, name=name, start="beginning")
        hub.start()
        with open(output + ".ready", "w") as ready:
            ready.write("ready")
        stop.wait()


if __name__ == "__main__":
    main()

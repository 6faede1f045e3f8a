import subprocess
import sys


def test_import_eventhub_pulls_in_no_heavy_dependencies():
    code = (
        "import sys, eventhub, eventhub.cli, eventhub.testing;"
        # numpy is not in the list: sqlite-utils imports it whenever it is installed.
        "heavy = [m for m in"
        " ('torch', 'faiss', 'sentence_transformers', 'transformers')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_public_names():
    from eventhub import Event, Hub, Integration, hookimpl  # noqa: F401

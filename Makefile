# eventhub: `make run` runs the main job, `make test` the whole suite, `make bench` the benchmarks.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

# Each long step says what it does (==> ...); pip itself stays quiet.

.PHONY: run test bench lint venv clean

# The CPU build of torch goes in first (from this machine's local wheel), so that
# sentence-transformers never pulls a multi-GB CUDA build.
$(BIN)/.installed: pyproject.toml
	@echo "==> creating $(VENV) (a fresh virtual environment)"
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "==> installing PyTorch (CPU build, from local disk)"
	$(BIN)/pip install --quiet torch==2.13.0
	@echo "==> installing eventhub with its extras (dev, rag, server, s3)"
	$(BIN)/pip install --quiet -e '.[dev,rag,server,s3,sql,redis,rabbitmq]'
	touch $@
	@echo "==> $(VENV) is ready"

venv: $(BIN)/.installed

# The daemon on the example config (Ctrl-C stops it); examples/app.py publishes to it.
run: venv
	@echo "==> running the daemon on examples/eventhub.toml (Ctrl-C stops it)"
	$(BIN)/eventhub run --config examples/eventhub.toml

# A fresh virtual environment from nothing, then the whole suite.
test:
	rm -rf $(VENV)
	$(MAKE) --no-print-directory venv
	@echo "==> running the test suite"
	$(BIN)/python -m pytest

# The peers measured against (LangChain's indexing API) come with the bench extra.
bench: venv
	@echo "==> installing the benchmarks' peers (the bench extra)"
	$(BIN)/pip install --quiet -e '.[bench]'
	@echo "==> running the benchmarks"
	$(BIN)/python -m bench

# Style, types (eventhub/, integrations/, workflows/) and the import contracts of the
# layers (setup.cfg).
lint: venv
	$(BIN)/ruff check eventhub integrations workflows tests bench examples
	$(BIN)/ruff format --check eventhub integrations workflows tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

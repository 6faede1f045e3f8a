# eventhub: `make run` runs the main job, `make test` the whole suite, `make bench` the benchmarks.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test bench lint venv clean

$(BIN)/.installed: pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first (from this machine's local wheel), so that
	# sentence-transformers never pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,rag,server]'
	touch $@

venv: $(BIN)/.installed

# The daemon on the example config (Ctrl-C stops it); examples/app.py publishes to it.
run: venv
	$(BIN)/eventhub run --config examples/eventhub.toml

# A fresh virtual environment from nothing, then the whole suite.
test:
	rm -rf $(VENV)
	$(MAKE) venv
	$(BIN)/python -m pytest

# The peers measured against (LangChain's indexing API) come with the bench extra.
bench: venv
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

lint: venv
	$(BIN)/ruff check eventhub integrations workflows tests bench examples
	$(BIN)/ruff format --check eventhub integrations workflows tests bench examples
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# synclip: `make demo` trains and evaluates a small CLIP on the emoji corpus; `make test` runs the tests.
# Both create .venv when it is missing. Override PYTHON or TORCH_SPEC for another machine.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.synclip-installed

.PHONY: demo test lint bench data-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Debian data sets used by evaluation and tests (Fashion-MNIST, WordNet); skipped when not root.
data-deps:
	@if [ -d /usr/share/datasets/fashion-mnist ] && [ -d /usr/share/wordnet ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist wordnet-base >/dev/null; \
	else echo "note: install Debian packages dataset-fashion-mnist wordnet-base for every eval task"; fi

demo: $(STAMP) data-deps
	$(BIN)/synclip demo

test: $(STAMP) data-deps
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info

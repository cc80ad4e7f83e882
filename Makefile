# Set-up and everyday commands. Everything installs into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

demo: $(STAMP)  ## Build stand-ins of the two signature models and convert them with the built-in recipes.
	$(BIN)/graphkit demo

test: $(STAMP)  ## Run the test suite.
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check graphkit plugins tests benchmarks
	$(BIN)/ruff format --check graphkit plugins tests benchmarks

bench: $(STAMP)  ## Run the benchmark suite (minutes); writes benchmarks/RESULTS.md.
	$(BIN)/python benchmarks/run.py

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) build dist *.egg-info

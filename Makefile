# The two commands of the quick start:  make run  ·  make test
# Both create ./.venv with Python 3.11 on first use and reinstall only when a requirements file changes.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# The browser tests drive Debian's Chromium (Playwright's own browser download does not work offline). `make test`
# installs it where it may (as root, or through sudo without a password); elsewhere it stops at once and says how.
CHROMIUM ?= /usr/bin/chromium
INSTALL_CHROMIUM := apt-get install -y chromium
# How to become root: empty when we are, `sudo -n` where sudo works without a password, `none` otherwise.
AS_ROOT ?= $(shell if [ "$$(id -u)" -eq 0 ]; then :; elif sudo -n true 2>/dev/null; then echo sudo -n; else echo none; fi)

.PHONY: run test lint bench train-defaults clean

run: $(VENV)/.runtime
	$(BIN)/streamlit run app.py

test: $(CHROMIUM) $(VENV)/.dev
	CNN_EXPLORER_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(VENV)/.dev
	$(BIN)/python -m bench

# Retrain the shipped default models (seeded; see assets/models/*.md).
train-defaults: $(VENV)/.runtime
	$(BIN)/python -m cnn_explorer train-defaults

$(CHROMIUM):
	$(if $(filter none,$(AS_ROOT)),$(error make test needs Chromium: run `sudo $(INSTALL_CHROMIUM)`))
	$(AS_ROOT) apt-get update -q
	$(AS_ROOT) env DEBIAN_FRONTEND=noninteractive $(INSTALL_CHROMIUM) -q
	@test -x $@ || { echo "make test needs Chromium at $@: installing it did not put it there" >&2; exit 1; }

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

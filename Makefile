# Two entry points for a fresh machine: `make demo` and `make test`. Each creates .venv when it is
# missing or when pyproject.toml / constraints.txt changed, and is a no-op install otherwise.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := dev,train,explain,web,export

.PHONY: demo test lint install clean-venv default-models browser-deps

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned through constraints.txt: an unpinned resolver would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cardiolens demo --out demo-output

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# The web app's browser tests (tests/app/test_browser.py) drive Debian's chromium with npm's
# playwright-core (pinned in package-lock.json). apt-get runs only when /usr/bin/chromium is missing
# (it needs root, as on CI); npm ci runs again only when package.json / package-lock.json change.
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

browser-deps: $(NODE_STAMP)
	test -x /usr/bin/chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# pytest exit status 5 means "no tests collected": not a failure of the suite itself
test: lint browser-deps
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

# Retrain the shipped default models (ecgpt-small, ppgpt-small) from ../shared/data (see the script for
# budgets: ecgpt-small's shipped recipe wants a GPU; ECG_RECIPE=cpu runs a 70-minute CPU recipe)
default-models: $(STAMP)
	bash scripts/train_default_models.sh

clean-venv:
	rm -rf $(VENV)

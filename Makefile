# sonotype: `make demo` and `make test` work on a fresh machine (they install what is missing).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

.PHONY: install test lint demo bench browser clean docs docs-check wheel

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: otherwise a dependency pulls the CUDA build (GBs).
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests

# The browser test's Chromium: installed here, before pytest, never by a test. Quick when
# present; where it cannot be installed (no apt, not root, offline) it says so and the
# browser tests skip.
browser: $(STAMP)
	@scripts/setup_browser.sh $(BIN)/python || echo "make browser: chromium/chromium-driver not installed (see above); the browser tests will skip"

test: $(STAMP) browser
	$(MKDOCS) build --strict -d $$(mktemp -d)
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/sonotype demo --out demo_out --force

bench: $(STAMP)
	$(BIN)/sonotype bench features

# The documentation site (mkdocs.yml, docs/): strict, so a broken link, anchor or API reference
# fails. No --quiet: mkdocs' -q hides warnings from the strict counter (mkdocs issue #4126).
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs
docs: $(STAMP)
	$(MKDOCS) build --strict -d site

docs-check: $(STAMP)
	$(MKDOCS) build --strict -d $$(mktemp -d)

# The wheel as a user gets it: built, checked by twine, installed into a clean venv (torch
# first, pinned, as in $(STAMP)) and run from outside the source tree.
wheel: $(STAMP)
	rm -rf dist build  # a stale build/lib would put modules deleted from src/ into the wheel
	$(BIN)/python -m build --wheel --outdir dist
	$(BIN)/twine check --strict dist/*
	$(BIN)/python tests/test_wheel.py dist/*.whl
	set -e; whl=$$(ls $(CURDIR)/dist/*.whl); tmp=$$(mktemp -d); \
	$(PY) -m venv $$tmp/venv; \
	$$tmp/venv/bin/python -m pip install -q --upgrade pip; \
	$$tmp/venv/bin/python -m pip install -q torch==$(TORCH_VERSION); \
	$$tmp/venv/bin/python -m pip install -q $$whl; \
	cd $$tmp; \
	$$tmp/venv/bin/sonotype demo --out $$tmp/demo; \
	test -f $$tmp/demo/run/report.html; \
	rm -rf $$tmp; \
	echo "make wheel: $$(basename $$whl) installs into a clean venv and runs sonotype demo"

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache

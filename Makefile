# sonotype: `make demo` and `make test` work on a fresh machine (they install what is missing).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

.PHONY: install test lint demo bench browser clean

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
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/sonotype demo --out demo_out --force

bench: $(STAMP)
	$(BIN)/sonotype bench features

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache

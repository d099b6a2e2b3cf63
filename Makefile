# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# pip byte-compiles every installed file on one core (about a minute for torch and the rest); installing
# with --no-compile and then compiling the venv on every core halves that. Python would compile lazily
# on import, but not where PYTHONDONTWRITEBYTECODE is set, and then every command would pay again.
# compileall exits 1 for the few files it cannot compile (test data of other packages): ignored, as pip does.
PIP_INSTALL := $(PIP) install -q --no-compile --disable-pip-version-check
COMPILE := $(PY) -m compileall -qq -j 0 $(VENV)/lib pda_data pda_train || true
DEMO_OUT ?= demo_out
TORCH_PIN := torch==2.13.0

.PHONY: demo test test-fast lint install install-test clean

# A current pip first: the one Python 3.11 bundles took half a minute longer to install the same set.
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade --disable-pip-version-check pip

# torch first, pinned to the CPU build on disk: an unpinned torch would pull a multi-GB CUDA build.
define install_torch
	@if [ -n "$$CI" ] || ! $(PY) -c "import torch" 2>/dev/null; then \
		echo "installing $(TORCH_PIN)"; $(PIP_INSTALL) $(TORCH_PIN); fi
endef

install: $(PY)
	$(install_torch)
	$(PIP_INSTALL) -e .
	$(COMPILE)

install-test: $(PY)
	$(install_torch)
	$(PIP_INSTALL) -e ".[test]"
	$(COMPILE)

demo: install
	BIN=$(VENV)/bin bash tools/run_demo.sh $(DEMO_OUT)

test: install-test
	$(PY) -m ruff check pda_data pda_train tools tests
	$(PY) -m pytest -q

# The suite without the process-spawning tests (marked slow); `make test` runs everything.
test-fast: install-test
	$(PY) -m ruff check pda_data pda_train tools tests
	$(PY) -m pytest -q -m "not slow"

lint: install-test
	$(PY) -m ruff check pda_data pda_train tools tests

clean:
	rm -rf $(VENV) $(DEMO_OUT)

# Set-up is automatic: every target below creates .venv and installs the pinned environment first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
VENDOR := _vendor/.complete
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
BUILD  := $(BIN)/jupyter-book build . -W -n --keep-going

.PHONY: setup book test unit notebooks build-html lab execute bench lock clean

setup: $(STAMP) $(VENDOR)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# MathJax, RequireJS and the widget manager, served by the book itself (no CDN at read time).
$(VENDOR): scripts/vendor.sh
	bash scripts/vendor.sh

book: setup build-html

build-html:
	rm -rf _build/html _build/jupyter_execute _build/.doctrees
	$(BUILD)

unit: $(STAMP)
	$(PY) -m pytest -q tests

notebooks: $(STAMP)
	$(PY) -m pytest -q $(NBVAL) chapters

test: setup
	$(MAKE) unit
	$(MAKE) notebooks
	$(MAKE) build-html
	@echo "make test: unit tests, strict nbval on every chapter and the -W book build all passed"

# Re-execute every chapter in place (deterministic outputs, no timing metadata); commit the result.
execute: $(STAMP)
	cd chapters && for nb in *.ipynb; do \
	  ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.record_timing=False --ExecutePreprocessor.timeout=600 "$$nb" || exit 1; \
	done

lab: setup
	$(BIN)/jupyter lab --notebook-dir=chapters

bench: $(STAMP)
	$(PY) benchmarks/run.py

# Regenerate requirements.txt from pyproject.toml's direct pins, in a scratch environment.
lock:
	rm -rf _build/lockenv && $(PYTHON) -m venv _build/lockenv
	_build/lockenv/bin/pip install --quiet torch==2.13.0 -e '.[book,test]'
	(echo "# The whole environment, pinned. Regenerate with 'make lock' after changing pyproject.toml."; \
	 echo "torch==2.13.0"; echo "setuptools==84.2.1"; \
	 _build/lockenv/bin/pip freeze | grep -v -E '^(-e|torch==|diffnb)') > requirements.txt

clean:
	rm -rf _build _vendor

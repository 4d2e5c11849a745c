# Set-up is automatic: every target below creates .venv and installs the pinned environment first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
VENDOR := _vendor/.complete
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
BUILD  := $(BIN)/jupyter-book build . -W -n --keep-going

.PHONY: setup book test unit notebooks build-html browser lab-check chromium lab execute bench lock clean

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
	$(MAKE) browser
	$(MAKE) lab-check
	@echo "make test: unit tests, strict nbval on every chapter, the -W book build, the offline browser check and the JupyterLab check all passed"

# Re-execute every chapter in place (deterministic outputs, no timing metadata); commit the result.
execute: $(STAMP)
	cd chapters && for nb in *.ipynb; do \
	  ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.record_timing=False --ExecutePreprocessor.timeout=600 "$$nb" || exit 1; \
	done

# Debian's chromium for the browser checks (playwright drives it; its own browser download is not used),
# and a CJK font so that the glossary's Chinese terms render in the screenshots. Installs only what is missing.
chromium:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-wqy-microhei; fi

_build/html/index.html:
	$(MAKE) build-html

# Every page of the built book in headless Chromium, offline; screenshots in _build/screenshots/.
browser: setup chromium _build/html/index.html
	$(PY) scripts/browser_check.py _build/html

# JupyterLab on 127.0.0.1 with a temporary copy of chapters/: run a chapter, move an explorer's slider.
lab-check: setup chromium
	$(PY) scripts/lab_check.py

lab: setup
	$(BIN)/jupyter lab --notebook-dir=chapters

bench: $(STAMP)
	$(PY) benchmarks/run.py
	$(PY) benchmarks/diffusers_vs_diffnb.py

# Regenerate requirements.txt from pyproject.toml's direct pins, in a scratch environment.
lock:
	rm -rf _build/lockenv && $(PYTHON) -m venv _build/lockenv
	_build/lockenv/bin/pip install --quiet torch==2.13.0 -e '.[book,test]'
	(echo "# The whole environment, pinned. Regenerate with 'make lock' after changing pyproject.toml."; \
	 echo "torch==2.13.0"; echo "setuptools==84.2.1"; \
	 _build/lockenv/bin/pip freeze | grep -v -E '^(-e|torch==|diffnb)') > requirements.txt

clean:
	rm -rf _build _vendor

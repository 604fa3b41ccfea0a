# The Makefile is the interface: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# openssl makes the throwaway certificates of the STARTTLS tests; postgresql gives the tests (and the HA stack)
# initdb and pg_ctl, which Debian keeps off PATH in /usr/lib/postgresql/<version>/bin. They run their own
# server on a free port, so the cluster Debian's package may start on 5432 is left alone and does not matter.
# chromium and chromium-driver run the dashboard page's browser test (selenium drives them headless).
DEB_PACKAGES := prometheus prometheus-alertmanager openssl postgresql chromium chromium-driver
DEB_BINARIES := prometheus promtool prometheus-alertmanager amtool openssl chromium chromedriver
PG_BINARIES := initdb pg_ctl postgres
ENV ?= dev
RUN_DIR ?= run
FUZZ_EXAMPLES ?= 2000
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup debs test test-fast fuzz generate check up up-ha down status drill bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  Variables: ENV=$(ENV) (environment of make up and up-ha), RUN_DIR=$(RUN_DIR), VENV=$(VENV), FUZZ_EXAMPLES=$(FUZZ_EXAMPLES)"
	@echo "             PYTEST_PARALLEL=$(PYTEST_PARALLEL) (make test, test-fast: empty runs one file at a time)"
	@echo "             SEVERITY=$(SEVERITY) (make drill: empty drills every severity, SEVERITY=critical that one only)"

setup: debs $(INSTALLED) ## Install what is missing: Debian's prometheus, alertmanager, openssl, postgresql, chromium; the project into .venv

# Debian's packages start their own prometheus and prometheus-alertmanager services on 9090 and 9093, the
# ports `make up` uses; we install them for the binaries, so the services they bring are stopped and disabled.
debs:
	@missing=""; for b in $(DEB_BINARIES); do command -v $$b >/dev/null || missing=1; done; \
	for b in $(PG_BINARIES); do ls /usr/lib/postgresql/*/bin/$$b >/dev/null 2>&1 || command -v $$b >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then \
	    echo "error: installing $(DEB_PACKAGES) needs root: run 'make setup' as root or install sudo" >&2; exit 1; \
	  fi; \
	  echo "Installing Debian packages: $(DEB_PACKAGES)"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEB_PACKAGES) && \
	  if [ -d /run/systemd/system ]; then \
	    echo "Stopping and disabling the services Debian's packages started (make up runs its own)"; \
	    $(SUDO) systemctl disable --now prometheus prometheus-alertmanager || true; \
	  fi; \
	fi

$(INSTALLED): pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "Installing python3-venv"; $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv python3-pip && \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

# Two workers, a test file each at a time (module fixtures such as a stack stay one per file): most tests wait on
# real processes, so two cores run two files' worth at once (the whole suite in ~9 min rather than ~16).
PYTEST_PARALLEL ?= -n 2 --dist loadfile

test: setup ## Run every test, the end-to-end ones through real Prometheus and Alertmanager included
	$(PY) -m pytest $(PYTEST_PARALLEL)

test-fast: setup ## Run the tests but the end-to-end ones
	$(PY) -m pytest $(PYTEST_PARALLEL) -m "not e2e"

fuzz: setup ## Fuzz ingest and the history API on the real receiver longer (FUZZ_EXAMPLES per property)
	DUMONT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/receiver/test_fuzz.py -q -o timeout=3600

generate: setup ## Render rules_src/ into generated/ for every environment
	$(VENV)/bin/dumont-rules generate

check: setup ## Fail if generated/ is stale; promtool/amtool check and test everything generated
	$(VENV)/bin/dumont-rules check

up: setup ## Start the whole stack on 127.0.0.1 (ENV=dev) and show an alert firing and resolving
	$(PY) -m deploy.local up --env $(ENV) --run-dir $(RUN_DIR)

up-ha: setup ## Start the HA shape on 127.0.0.1: PostgreSQL, two receivers, two clustered Alertmanagers
	$(PY) -m deploy.local up --ha --env $(ENV) --run-dir $(RUN_DIR)

down: ## Stop exactly what `make up` or `make up-ha` started
	@if [ -x $(PY) ]; then $(PY) -m deploy.local down --run-dir $(RUN_DIR); else echo "nothing to stop"; fi

status: ## Show each process of the stack, its URL and whether it is ready
	@if [ -x $(PY) ]; then $(PY) -m deploy.local status --run-dir $(RUN_DIR); else echo "not set up"; fi

drill: ## Fire drill on the running stack: a test alert per severity, followed to every channel and resolved
	@if [ -x $(PY) ]; then $(PY) -m deploy.local.drill --run-dir $(RUN_DIR) $(if $(SEVERITY),--severity $(SEVERITY)); \
	else echo "not set up: make up first" >&2; exit 2; fi

bench: setup ## Run the benchmarks and print their figures beside a baseline
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: down ## Remove the virtual environment and the run folder
	rm -rf $(VENV) $(RUN_DIR)

# incident-operator — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      ?= .venv
PYTHON    ?= python3
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
PYTEST    := $(VENV)/bin/pytest
NAB_DIR   ?= $(firstword $(wildcard ../shared/data/nab) ../shared/data/nab)
APT_PACKAGES := prometheus prometheus-alertmanager mmdebstrap buildah
export PYTHONPATH := $(CURDIR)

.PHONY: help
help: ## Show this help
	@# Colour only on a terminal and never with NO_COLOR (https://no-color.org): piped help stays plain text.
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then on='\033[36m'; off='\033[0m'; else on=; off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %s%-18s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	@echo "==> Python virtualenv in $(VENV) with the project and its test and lint extras"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip
	@$(PIP) install -q -e '.[test,lint]'
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the virtualenv and install the project with its test and lint extras

# mypy --strict covers the typed core: whichever of these exist.
MYPY_PATHS := $(wildcard operator/incident_operator/domain operator/incident_operator/api.py \
                         operator/incident_operator/context.py operator/incident_operator/names.py)

.PHONY: lint
lint: venv ## ruff, the import contracts of .importlinter, mypy --strict on domain/, api.py, context.py
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy $(MYPY_PATHS)

.PHONY: wheel-check
wheel-check: venv ## Build the wheel, install it without extras in a fresh venv, run and import all of it
	$(PY) -m tools.check_wheel

.PHONY: apt-deps
apt-deps: ## Install Debian packages the tests need (Prometheus, Alertmanager, mmdebstrap, buildah), if missing
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> apt-get install$$missing"; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: controlplane
controlplane: ## Build kube-apiserver and etcd from the pinned Go modules (skipped when current)
	@bash tests/controlplane/build.sh >/dev/null

.PHONY: helm
helm: ## Build the pinned helm from the Go module proxy (skipped when current; cached outside the repo)
	@bash tests/tools/build-helm.sh >/dev/null

.PHONY: kstatus
kstatus: ## Build the kstatus checker the GitOps health test uses (skipped when current)
	@bash tests/kstatus/build.sh >/dev/null

.PHONY: actionlint
actionlint: ## Build the pinned actionlint from the Go module proxy (skipped when current; cached outside the repo)
	@bash tests/tools/build-actionlint.sh >/dev/null

.PHONY: deps
deps: venv apt-deps controlplane helm kstatus actionlint ## Everything the tests need: venv, Debian packages, control plane, helm, kstatus, actionlint

.PHONY: image
image: apt-deps ## Build the operator image offline (mmdebstrap base + buildah; skipped when current; docs/image.md)
	@bash tools/image/build.sh >/dev/null

.PHONY: lint-workflows
lint-workflows: actionlint ## Check .github/workflows with actionlint
	"$$(bash tests/tools/build-actionlint.sh 2>/dev/null)" -no-color .github/workflows/*.yaml

.PHONY: checkov
checkov: helm ## Scan the rendered chart with checkov (in a throwaway venv; findings explained in the chart README)
	@bash tools/checkov.sh "$$(bash tests/tools/build-helm.sh 2>/dev/null)"

.PHONY: test
test: deps image ## Run every test: unit, then integration against a real control plane and Prometheus
	$(PYTEST) tests -q

.PHONY: test-unit
test-unit: venv ## Run the unit tests only (no cluster)
	$(PYTEST) tests/unit -q

.PHONY: test-integration
test-integration: deps image ## Run the integration tests only
	$(PYTEST) tests/integration -q

.PHONY: crds
crds: helm ## Copy crds/, dashboards/ and alerts/ into the chart and the package; render manifests/install.yaml
	$(PY) -m tools.sync_crds --helm "$$(bash tests/tools/build-helm.sh 2>/dev/null)"

.PHONY: chart
chart: crds ## Lint the Helm chart (after syncing its generated files)
	"$$(bash tests/tools/build-helm.sh 2>/dev/null)" lint charts/incident-operator --strict

.PHONY: manifests
manifests: crds ## Render manifests/install.yaml from the chart (part of `make crds`)

.PHONY: bench
bench: deps ## Run the benchmarks; they print figures (never pass/fail)
	$(PY) benchmarks/run_all.py --nab $(NAB_DIR)

.PHONY: demo
demo: deps ## One-command tour: control plane, Prometheus, ticket simulator, operator, live view
	$(PY) -m tools.demo

.PHONY: run
run: venv ## Run the operator against the current kubeconfig
	$(PY) -m incident_operator --verbose

.PHONY: clean
clean: ## Remove the virtualenv and caches (the control-plane binaries stay in ~/.cache)
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info

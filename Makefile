# Every target documents itself: `make help` lists them.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export OPENBLAS_NUM_THREADS ?= 1
OUT ?= out
ENVS ?= dev prod

.DEFAULT_GOAL := help

help: ## List the targets with what they do
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

setup: ## Install everything (Debian GL packages, .venv with pinned packages, CDK CLI + Node 22)
	@scripts/bootstrap.sh

run: setup ## Main job on the embedded default: the whole pipeline on one machine (moto as AWS), sample meshes
	$(BIN)/sim2cloud demo --out $(OUT)/demo

render: setup ## Only the render step: the sample meshes into a labelled YOLO dataset with a preview picture
	$(BIN)/sim2cloud render --meshes samples/meshes --out $(OUT)/dataset --frames 200

test: setup ## The test suite (what CI runs): lint, type check, unit, infra and integration tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@$(MAKE) --no-print-directory typecheck-only
	$(BIN)/pytest -n 2 --dist loadfile

lint: setup ## ruff lint + format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

lint-docker: setup ## hadolint over every containers/*/Dockerfile (the Isaac Sim render image, the YOLO image)
	$(BIN)/hadolint containers/*/Dockerfile

format: setup ## Apply ruff formatting and safe fixes
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

LAMBDAS := render_launcher training_launcher model_gate

typecheck: setup ## mypy over the packages, the CDK app and each Lambda (as its bundle sees it)
	@$(MAKE) --no-print-directory typecheck-only

typecheck-only:
	$(BIN)/mypy sim2cloud isaac_jobs stacks app.py
	@# Each Lambda separately: every one has a handler.py, and lambda/ is not a package (a keyword).
	@for fn in $(LAMBDAS); do echo "mypy lambda/$$fn"; MYPYPATH=lambda:. $(BIN)/mypy lambda/$$fn || exit 1; done


bench-render: setup ## Render throughput: end-to-end frames/s beside the bare render rate
	$(PY) bench/render_throughput.py

bench-serving: setup ## Serving latency/throughput: server vs bare ONNX Runtime vs Ultralytics predict under gunicorn
	$(PY) bench/serving_latency.py

mutation: setup ## Mutation testing of the core modules (cosmic-ray; MODULES=a,b RESUME=1 RETEST=1): scores
	nice -n 10 $(PY) scripts/mutation.py --out $(OUT)/mutation $(if $(MODULES),--modules $(MODULES)) $(if $(RESUME),--resume) $(if $(RETEST),--retest-survivors)

synth: setup ## Synthesize every stack of every environment (cdk-nag runs in synth) into cdk.out/<env>, no AWS needed
	@for env in $(ENVS); do echo "==> cdk synth -c env=$$env"; npx cdk synth -c env=$$env -q -o cdk.out/$$env || exit 1; done

check-infra: setup ## cdk-nag, cfn-lint and checkov over the synthesized templates of every environment
	$(PY) scripts/check_infra.py --out cdk.out/check

clean: ## Remove generated outputs (not the venv)
	rm -rf $(OUT) cdk.out .pytest_cache .mypy_cache .ruff_cache

.PHONY: help setup run render test lint format typecheck typecheck-only bench-render synth check-infra clean lint-docker bench-serving mutation

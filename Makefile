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

setup-runtime: ## Install what the pipeline runs on (Debian GL packages, .venv with requirements.txt only): make run/render
	@scripts/bootstrap.sh --runtime

run: setup-runtime ## Main job on the embedded default: the whole pipeline on one machine (moto as AWS), sample meshes
	$(BIN)/sim2cloud demo --out $(OUT)/demo

render: setup-runtime ## Only the render step: the sample meshes into a labelled YOLO dataset with a preview picture
	$(BIN)/sim2cloud render --meshes samples/meshes --out $(OUT)/dataset --frames 200 --force

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


bench-render: setup ## Render throughput: end-to-end vs bare frames/s and the render job with its worker processes, default spec beside the realism settings off
	$(PY) bench/render_throughput.py

bench-usd: setup ## USD conversion time (sample batch, a 300k-triangle SAM 3D-style GLB) beside loading the meshes alone
	$(PY) bench/usd_conversion.py

bench-serving: setup ## Serving latency/throughput: server vs bare ONNX Runtime vs Ultralytics predict under gunicorn
	$(PY) bench/serving_latency.py

.PHONY: bench-serving-soak
bench-serving-soak: setup ## Serving soak: 5 minutes of good, hostile and slow clients on loopback (0 5xx, 0 restarts)
	$(PY) bench/serving_soak.py --seconds 300

.PHONY: bench-domain-shift
bench-domain-shift: setup ## Synthetic-val vs domain-shift mAP50 (Cycles reference set; makes its bpy venv once, ~1 GB)
	$(PY) bench/domain_shift.py --variant cpu --out $(OUT)/domain-shift

mutation: setup ## Mutation testing of the core modules (cosmic-ray; MODULES=a,b RESUME=1 RETEST=1): scores
	nice -n 10 $(PY) scripts/mutation.py --out $(OUT)/mutation $(if $(MODULES),--modules $(MODULES)) $(if $(RESUME),--resume) $(if $(RETEST),--retest-survivors)

synth: setup ## Synthesize every stack of every environment (cdk-nag runs in synth) into cdk.out/<env>, no AWS needed
	@for env in $(ENVS); do echo "==> cdk synth -c env=$$env"; npx cdk synth -c env=$$env -q -o cdk.out/$$env || exit 1; done

check-infra: setup ## cdk-nag, cfn-lint and checkov over the synthesized templates of every environment
	$(PY) scripts/check_infra.py --out cdk.out/check $(if $(GITHUB_REPOSITORY),--github-repository $(GITHUB_REPOSITORY))

lint-workflows: setup ## actionlint and zizmor over .github/workflows (offline; an ignore needs a reason beside it)
	$(BIN)/actionlint
	$(BIN)/zizmor --offline .github/workflows

smoke-container: setup ## Build the YOLO image (VARIANT=cpu) and smoke-run its train and serve entrypoints (needs Docker)
	scripts/container_smoke.sh

# --- Deploying one environment (README "Deploy to your account"): make <target> ENV=dev ----------------------
ENV ?= dev
IMAGE_TAG ?= $(shell git rev-parse HEAD 2>/dev/null)
CDK_APPROVAL ?= broadening
STACK = Sim2Cloud-$(ENV)
# Context of every cdk command below. AWS_ACCOUNT_ID/AWS_REGION pin the target (else the CLI's profile);
# GITHUB_REPOSITORY (owner/name; GitHub Actions sets it) is the only repository the CiAccess roles trust:
# without it that stack is not created. OIDC_SUBJECT_REPOSITORY: the immutable sub-claim form, if used.
# CREATE_OIDC_PROVIDER=false for the second environment of one account (one GitHub OIDC provider per account).
CDK_CONTEXT = -c env=$(ENV) -c image_tag=$(IMAGE_TAG) \
	$(if $(AWS_ACCOUNT_ID),-c account=$(AWS_ACCOUNT_ID)) $(if $(AWS_REGION),-c region=$(AWS_REGION)) \
	$(if $(GITHUB_REPOSITORY),-c github_repository=$(GITHUB_REPOSITORY)) \
	$(if $(OIDC_SUBJECT_REPOSITORY),-c github_subject_repository=$(OIDC_SUBJECT_REPOSITORY)) \
	$(if $(CREATE_OIDC_PROVIDER),-c create_oidc_provider=$(CREATE_OIDC_PROVIDER))
FOUNDATION_STACKS = $(STACK)-Storage $(STACK)-Monitoring $(STACK)-Registries $(if $(GITHUB_REPOSITORY),$(STACK)-CiAccess)
PIPELINE_STACKS = $(STACK)-Render $(STACK)-Training $(STACK)-Endpoint
CDK_DEPLOY = npx cdk deploy --exclusively --require-approval $(CDK_APPROVAL) --progress events

deploy-foundation: setup ## Deploy wave 1 of ENV: Storage, Monitoring, Registries (+ CiAccess when GITHUB_REPOSITORY is set)
	$(CDK_DEPLOY) $(FOUNDATION_STACKS) $(CDK_CONTEXT)

images: setup ## Build the YOLO (gpu, cpu) and Isaac Sim images and push them to ENV's repositories as IMAGE_TAG
	ENV=$(ENV) IMAGE_TAG=$(IMAGE_TAG) scripts/build_images.sh

deploy-pipeline: setup ## Deploy wave 2 of ENV, running IMAGE_TAG: Render, Training, Endpoint (no endpoint until a model is approved)
	$(CDK_DEPLOY) $(PIPELINE_STACKS) $(CDK_CONTEXT)

diff: setup ## cdk diff of every stack of ENV against the deployed ones (read-only credentials suffice)
	npx cdk diff --all $(CDK_CONTEXT)

.PHONY: lint-workflows smoke-container deploy-foundation images deploy-pipeline diff

clean: ## Remove generated outputs (not the venv)
	rm -rf $(OUT) cdk.out .pytest_cache .mypy_cache .ruff_cache

.PHONY: help setup setup-runtime run render test lint format typecheck typecheck-only bench-render synth check-infra clean lint-docker bench-serving bench-usd mutation

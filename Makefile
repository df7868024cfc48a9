# brfed — thin, self-documenting targets over cargo and the local-world scripts. Every target is
# idempotent. `make help` lists them.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export BRFED_CACHE ?= $(HOME)/.cache/brfed
export CARGO_TARGET_DIR ?= $(BRFED_CACHE)/target
export BRFED_WORLD_DIR ?= $(CURDIR)/.world
N ?= 3
WORLD := infra/local/world.sh

.DEFAULT_GOAL := help
.PHONY: help setup build lint test test-world test-unit test-system world-up world-down world-env demo bench test-faults

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## Install/build everything the world needs (cached under ~/.cache/brfed)
	@$(WORLD) setup

build: ## Build every crate (functions, simulated operator, tests)
	cargo build --workspace --bins --tests

lint: ## rustfmt check, clippy with warnings denied, checkov on the AWS template (pinned venv; skips and why: infra/aws/.checkov.yaml), no import circles in functions/core
	cargo fmt --all -- --check
	cargo test -q -p brfed-core --test layout
	@venv="$$(infra/aws/setup-lint.sh)" && "$$venv/bin/checkov" --config-file infra/aws/.checkov.yaml
	cargo clippy --workspace --all-targets -- -D warnings

test-unit: lint-template ## Unit and contract tests that need no world (and the AWS template lint, and the check that every build of make test compiles each dependency once)
	python3 infra/local/one-build.py
	cargo test --workspace --exclude brfed-system-tests

test-system: ## System tests against a running world (make world-up first); builds the brfed CLI they run
	source $(BRFED_WORLD_DIR)/env && cargo build --workspace --bins && cargo test -p brfed-system-tests -- --test-threads=4

test: ## Everything: setup, unit tests, system tests on a world with our CRDs, and again with $BRFED_UPSTREAM_CRDS if set
	@$(WORLD) setup
	$(MAKE) --no-print-directory test-unit
	@BRFED_UPSTREAM_CRDS= $(MAKE) --no-print-directory test-world CRDS="brfed's own CRDs (infra/crds)"
	@if [ -n "$${BRFED_UPSTREAM_CRDS:-}" ]; then \
	  $(MAKE) --no-print-directory test-world CRDS="the upstream CRDs of $$BRFED_UPSTREAM_CRDS"; fi

test-world: ## World up, system tests, world down (always)
	@echo "== system tests on a world with $(CRDS)"
	@trap '$(WORLD) down' EXIT; $(WORLD) up $(N) && $(MAKE) --no-print-directory test-system

world-up: ## Start the local world with N data planes (default 3)
	@$(WORLD) up $(N)

world-down: ## Stop everything the world started
	@$(WORLD) down

world-env: ## Print the exports that let a shell talk to the world (eval them)
	@$(WORLD) env

demo: ## Set up, start the world, back up the 3-cluster TiDB and restore it, print the result
	@trap '$(WORLD) down' EXIT; $(WORLD) up 3 && source $(BRFED_WORLD_DIR)/env && python infra/local/demo.py

bench: ## Benchmarks on the local world (watch vs 30 s poll: pause-window p50/p95, backup and restore end to end, history, Lambda init/RSS/size, 50x200 payloads, cost per backup and per month on AWS vs the original); one table + JSON
	@trap '$(WORLD) down' EXIT; $(WORLD) up 3 && source $(BRFED_WORLD_DIR)/env && \
	  cargo run -q -p brfed-system-tests --bin brfed-bench

test-faults: ## Fault matrix on the local world (backup/restore phase x failed, invalid, API down/restart, Lambda kill, stopped, deadline); table + JSON, fails if a cell leaves anything paused or unaccounted (BRFED_FAULTS=backup:execute:* for a subset)
	@trap '$(WORLD) down' EXIT; $(WORLD) up 3 && source $(BRFED_WORLD_DIR)/env && \
	  cargo run -q -p brfed-system-tests --bin brfed-faults

# --- AWS: lint the template, package the functions, deploy (infra/aws, docs/deploy.md) -----------
# Function crates = every functions/<crate>/src/main.rs. `package` builds them with cargo-lambda
# (venv) and its zig linker against glibc $(LAMBDA_GLIBC), the glibc of Amazon Linux 2023
# (provided.al2023), for x86_64, with the workspace's own [profile.release]:
# --locked builds exactly the committed Cargo.lock (a stale lock stops the build);
# --disable-optimizations drops cargo-lambda's extra flags (panic=abort would defeat
# lambda_runtime's panic-to-error layer; target-cpu=haswell). Not part of `make test`: a cold
# release build of the AWS SDK takes longer than the rest of the suite.
LAMBDA_FUNCTIONS := $(sort $(patsubst functions/%/src/main.rs,%,$(wildcard functions/*/src/main.rs)))
LAMBDA_DIR := $(CARGO_TARGET_DIR)/lambda
LAMBDA_GLIBC := 2.34
.PHONY: lint-template package deploy

lint-template: ## cfn-lint infra/aws/template.yaml (the venv's cfn-lint); test-unit runs it
	@venv="$$(infra/local/setup-python.sh)" && "$$venv/bin/cfn-lint" infra/aws/template.yaml
	@echo "lint-template: infra/aws/template.yaml is clean"

package: ## Release-build every function for Lambda: <target dir>/lambda/<crate>/bootstrap.zip, checked (glibc <= 2.34)
	@venv="$$(infra/local/setup-python.sh)" && PATH="$$venv/bin:$$PATH" \
	  cargo lambda build --release --locked --disable-optimizations --output-format zip \
	    --target x86_64-unknown-linux-gnu.$(LAMBDA_GLIBC) --lambda-dir $(LAMBDA_DIR) $(addprefix -p ,$(LAMBDA_FUNCTIONS)) && \
	  "$$venv/bin/python" infra/aws/check_package.py --max-glibc $(LAMBDA_GLIBC) --machine X86-64 \
	    $(foreach f,$(LAMBDA_FUNCTIONS),$(LAMBDA_DIR)/$(f)/bootstrap.zip)
	@ln -sfn $(LAMBDA_DIR) infra/aws/lambda

deploy: ## Package and deploy to AWS (needs credentials): BRFED_ARTIFACT_BUCKET=... BRFED_PARAMS="KubeconfigLocation=s3://... BackupBucketName=..."
	@infra/aws/deploy.sh preflight
	@$(MAKE) --no-print-directory package
	@infra/aws/deploy.sh deploy

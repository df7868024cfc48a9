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
.PHONY: help setup build lint test test-world test-unit test-system world-up world-down world-env demo bench

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## Install/build everything the world needs (cached under ~/.cache/brfed)
	@$(WORLD) setup

build: ## Build every crate (functions, simulated operator, tests)
	cargo build --workspace --bins --tests

lint: ## rustfmt check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test-unit: ## Unit and contract tests that need no world
	cargo test --workspace --exclude brfed-system-tests

test-system: ## System tests against a running world (make world-up first)
	source $(BRFED_WORLD_DIR)/env && cargo test -p brfed-system-tests -- --test-threads=4

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

demo: ## Set up, start the world, back up the 3-cluster TiDB, print the result
	@$(WORLD) setup
	@trap '$(WORLD) down' EXIT; $(WORLD) up 3 && source $(BRFED_WORLD_DIR)/env && python infra/local/demo.py

bench: ## Watch vs 30 s-poll backup side by side on the local world; prints the table
	@$(WORLD) setup
	@trap '$(WORLD) down' EXIT; $(WORLD) up 3 && source $(BRFED_WORLD_DIR)/env && \
	  cargo run -q -p brfed-system-tests --bin brfed-bench

# Affinity: local loop and checks. Everything installs into .tools/ (scripts/setup.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Public data sets (read-only), beside the repo.
SHARED ?= $(abspath $(CURDIR)/../shared)
# Runs a command with the local stack's environment (AWS_ENDPOINT_URL_*, table names, AFFINITY_API_URL).
WITH_STACK_ENV = set -a && source .stack/env && set +a &&

.PHONY: help setup up down demo test lint bench

help:
	@echo "make setup  install the local tools into .tools/ (python venv, DynamoDB Local, cargo-lambda)"
	@echo "make up     run the whole service locally (stays in the foreground; Ctrl-C stops it)"
	@echo "make down   stop what 'make up' / 'make demo' started"
	@echo "make demo   start the service, create a demo tenant, import real shop data into it"
	@echo "make test   cfn-lint, script tests, cargo test --workspace against DynamoDB Local + moto"
	@echo "make lint   cargo fmt --check, cargo clippy -D warnings"
	@echo "make bench  (not written yet)"

setup:
	@scripts/setup.sh

up: setup
	@scripts/run_local.sh --foreground

down:
	@scripts/stack.sh down

demo: setup
	@scripts/run_local.sh --no-reload
	$(WITH_STACK_ENV) tenant="$$(cargo run --quiet --release -p affinity-admin -- create-demo-tenant demo)" && \
	export AFFINITY_API_KEY="$$(printf '%s' "$$tenant" | .tools/venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')" && \
	cargo run --release -p affinity-importer --bin affinity-import -- \
		replay --site demo --format rees46 --shift-to-now "$(SHARED)/data/rees46-2019-oct-sample.csv"
	@$(WITH_STACK_ENV) .tools/venv/bin/python scripts/stream_pump.py --drain
	@$(WITH_STACK_ENV) echo "Affinity runs at $$AFFINITY_API_URL  (stop it with: make down)"

test:
	@scripts/test.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	@echo "bench: no benchmark yet"

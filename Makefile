# Affinity: local loop and checks. Everything installs into .tools/ (scripts/setup.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Runs a command with the local stack's environment (AWS_ENDPOINT_URL_*, table names, AFFINITY_API_URL).
WITH_STACK_ENV = set -a && source .stack/env && set +a &&

.PHONY: help setup up down demo demo-delete import test lint bench sam-build

help:
	@echo "make setup  install the local tools into .tools/ (python venv, DynamoDB Local, cargo-lambda)"
	@echo "make up     run the whole service locally, with a store: prints its site id and API key and writes"
	@echo "           them to .stack/env (AFFINITY_SITE, AFFINITY_API_KEY); foreground, Ctrl-C stops it"
	@echo "make down   stop what 'make up' / 'make demo' started"
	@echo "make demo   start the service, install a demo store via OAuth, replay real shop data, show recommendations"
	@echo "make demo-delete  on the running service: delete a throw-away store, watch the schedule finish it"
	@echo "make import FILE=data/uci-online-retail-sample.csv FORMAT=uci   import a file into the running"
	@echo "           service's store (.stack/env: AFFINITY_API_URL, AFFINITY_SITE, AFFINITY_API_KEY); FORMAT:"
	@echo "           rees46|gms|uci; ARGS=... more importer flags (e.g. ARGS=--keep-times)"
	@echo "make test   template checks (cfn-lint, sam validate --lint, checkov), events/ shapes, script tests,"
	@echo "           cargo test --workspace (IAM proof included) against DynamoDB Local + moto,"
	@echo "           events/ through cargo lambda invoke, sam build"
	@echo "make lint   cargo fmt --check, cargo clippy -D warnings"
	@echo "make sam-build  sam build: the arm64 release binaries sam deploy uploads (.aws-sam/build)"
	@echo "make eval   next-item evaluation (HR/MRR/NDCG@20) vs POP, S-POP, ItemKNN, V-SKNN -> EVALUATION.md"
	@echo "make bench  measure: criterion, cold start, arm64 sizes, the REES46 replay vs a bare-SDK floor -> BENCHMARKS.md"

setup:
	@scripts/setup.sh

up: setup
	@scripts/run_local.sh --foreground --store

down:
	@scripts/stack.sh down

demo: setup
	@scripts/demo.sh

demo-delete:
	@scripts/demo_delete.sh

# Imports FILE (FORMAT rees46|gms|uci) into the store of the running stack (make up / make demo), times
# shifted to now; then drains the events stream so the recommendations printed at the end are current.
import:
	@[[ -n "$(FILE)" && -n "$(FORMAT)" ]] || { echo "usage: make import FILE=path.csv FORMAT=rees46|gms|uci [ARGS=...]" >&2; exit 2; }
	@[[ -s .stack/env ]] && grep -q '^export AFFINITY_SITE=' .stack/env || { echo "make import: no running store: start one with make up (or make demo)" >&2; exit 2; }
	@echo "make import: building the importer (release; the first time a few minutes)" >&2
	@cargo build --release -p affinity-importer --bin affinity-import
	@$(WITH_STACK_ENV) ./target/release/affinity-import replay --format "$(FORMAT)" \
	  --before-report "'$$PWD/.tools/venv/bin/python' '$$PWD/scripts/stream_pump.py' --drain" $(ARGS) "$(FILE)"

test:
	@scripts/test.sh

# Also part of make test; alone, before `sam deploy`.
sam-build: setup
	@AFFINITY_SKIP_SETUP=1 scripts/sam_build.sh

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# Installs what it needs like `make demo`, runs every measurement of issue 7 on its own stack
# (.stack/bench, stopped at the end), raw results in bench/results/, tables in BENCHMARKS.md.
bench: setup
	@bench/run.sh

# Next-item evaluation of the recommender against POP, S-POP, ItemKNN, V-SKNN on data/ -> EVALUATION.md.
.PHONY: eval
eval:
	cargo build --profile bench -p eval
	./target/release/eval EVALUATION.md

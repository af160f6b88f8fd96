# dspy-rl — `make help` lists the targets. `make train` and `make test` set everything up on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP_DEPS := $(VENV)/.deps-installed
STAMP_EXT := $(VENV)/.rust-ext-built
RUST_SOURCES := $(shell find rust_env/src -name '*.rs' 2>/dev/null) rust_env/Cargo.toml
export RAY_USAGE_STATS_ENABLED ?= 0
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1

.DEFAULT_GOAL := help
.PHONY: help setup system-deps build train test test-all rust-test lint format bench bench-all pufferlib kafka-start kafka-stop clean

help: ## list the targets
	@echo "dspy-rl — make targets:"
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP_DEPS): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel
	$(BIN)/pip install -q "maturin>=1.5,<2"
	@# Dependencies first (pip caches wheels; torch is large), then the package itself in develop mode.
	$(BIN)/python scripts/print_deps.py dev dspy | xargs -d '\n' $(BIN)/pip install -q
	@touch $@

$(STAMP_EXT): $(STAMP_DEPS) $(RUST_SOURCES)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH CARGO_BUILD_JOBS=2 \
		$(BIN)/maturin develop --release -q 2>&1 | grep -vE '^\s*(Compiling|Finished)' || true
	$(BIN)/python -c "import dspy_rl._rust_env"
	@touch $@

setup: $(STAMP_EXT) system-deps ## create the virtualenv, install dependencies, build the Rust extension (idempotent)

system-deps: ## Debian packages: python3-pytest, git, make, patch (ShellEnv), chromium (dashboard tests), bubblewrap (bench)
	@bash scripts/system_deps.sh

build: setup ## (re)build the Rust extension in release mode
	@rm -f $(STAMP_EXT) && $(MAKE) --no-print-directory $(STAMP_EXT)

ifndef TRAIN_DIR
TRAIN_DIR := runs/train/make-train-$(shell date +%Y%m%d-%H%M%S)
endif
train: setup ## train PPO in the simulator (env=shell_sim), then evaluate it in the simulator and for real (env=shell)
	$(BIN)/dspy-rl train env=shell_sim run_dir=$(TRAIN_DIR) $(ARGS)
	@echo "== trained in the simulator; simulator success (env=shell_sim) =="
	@$(BIN)/dspy-rl eval env=shell_sim policy=checkpoint checkpoint=$(TRAIN_DIR) episodes=1000 | grep -E "success rate|mean return"
	@echo "== real success: ShellEnv (env=shell, sandboxed commands in real workspaces) =="
	@$(BIN)/dspy-rl eval env=shell policy=checkpoint checkpoint=$(TRAIN_DIR) episodes=114 env.num_envs=38 | grep -E "success rate|mean return"

test: setup ## run the default test suite (not slow), with a local Kafka broker (started and stopped if none runs)
	scripts/with_kafka.sh $(BIN)/pytest -q $(ARGS)

test-all: setup ## run every test, slow ones included (with a local Kafka broker, as `make test`)
	scripts/with_kafka.sh $(BIN)/pytest -q -m "" $(ARGS)

rust-test: ## cargo test + fmt + clippy -D warnings for rust_env/
	cd rust_env && cargo fmt --check && cargo clippy --all-targets -q -- -D warnings && cargo test -q

lint: setup rust-test ## ruff (Python) and cargo fmt/clippy (Rust)
	$(BIN)/ruff check dspy_rl tests bench scripts
	$(BIN)/ruff format --check dspy_rl tests bench scripts

format: setup ## format Python and Rust sources
	$(BIN)/ruff format dspy_rl tests bench scripts && $(BIN)/ruff check --fix dspy_rl tests bench scripts
	cd rust_env && cargo fmt

bench: setup ## run the main benchmarks (peers in the same run); JSON in bench/results/, summary in bench/RESULTS.md
	$(BIN)/python bench/env_throughput.py
	$(BIN)/python bench/ppo_vs_rllib.py
	$(BIN)/python bench/grpo_vs_ppo_env.py

bench-all: bench ## also the GRPO-vs-TRL, judge load, Kafka ingest (needs kafka-start) and sweep benchmarks
	$(BIN)/pip install -q "trl>=1.16" "optuna>=3.6"
	$(BIN)/python bench/grpo_vs_trl.py --steps 30 --repeats 3
	$(BIN)/python bench/judge_load.py --workload llm-stub
	$(BIN)/python bench/kafka_ingest.py --events 100000 --rounds 3
	$(BIN)/python bench/sweep_benchmark.py

pufferlib: $(VENV)/.pufferlib-installed ## build and install pufferlib 3.0.0 headless next to RLlib's pins (optional)

$(VENV)/.pufferlib-installed: $(STAMP_DEPS) scripts/install_pufferlib.sh
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH scripts/install_pufferlib.sh
	@touch $@

kafka-start: ## start the local Kafka broker (KRaft, 127.0.0.1:9092; jars fetched with Maven once)
	scripts/kafka.sh start

kafka-stop: ## stop the local Kafka broker
	scripts/kafka.sh stop

clean: ## remove build outputs and run directories (keeps the virtualenv)
	rm -rf rust_env/target runs outputs bench/results .pytest_cache $(STAMP_EXT)
	find . -name '*.so' -path './dspy_rl/*' -delete

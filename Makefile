# The two set-up commands are `make demo` and `make test`; each creates .venv and installs the project when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export TF_CPP_MIN_LOG_LEVEL ?= 2
DEMO   := runs/demo

.PHONY: venv demo test lint bench train-omniglot clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make demo: train a small Siamese network on scikit-learn's bundled digits (CPU, ~1 min), evaluate it, plots in runs/demo
demo: $(STAMP)
	$(BIN)/python -m train --arch keras-contrastive --data digits --out $(DEMO) --epochs 12 --steps-per-epoch 50 \
		--batch-size 64 --lr 1e-2 --force --no-progress
	$(BIN)/python -m train.evaluate --model $(DEMO)/model.keras --data digits --heldout-from $(DEMO)/model_card.json \
		--n-way 5 --trials 400 --out $(DEMO)/eval --json $(DEMO)/eval/results.json
	@echo "demo: model, model card and plots are in $(DEMO)/"

## make test: lint and the test suite (under ~20 min on 2 CPU cores)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -ra

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check runtime train

## make bench: training/inference throughput per architecture (JSON + table in runs/bench)
bench: $(STAMP)
	$(BIN)/python -m train.bench --out runs/bench

clean:
	rm -rf runs .pytest_cache .ruff_cache

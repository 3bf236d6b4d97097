# Two commands on a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cipherface-installed

.PHONY: setup demo test bench lint clean

$(STAMP): pyproject.toml plugins/tenseal_backend/pyproject.toml plugins/pyfhel_backend/pyproject.toml \
          examples/cipherface-opcount/pyproject.toml scripts/setup.sh scripts/pyfhel-wheel.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/cipherface demo

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/bench_pairwise.py

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache

# Two commands on a fresh machine:  `make demo`  and  `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cipherface-installed

.PHONY: setup demo test bench bench-gallery fuzz lint clean

$(STAMP): pyproject.toml plugins/tenseal_backend/pyproject.toml plugins/pyfhel_backend/pyproject.toml \
          plugins/seal_backend/pyproject.toml plugins/paillier_backend/pyproject.toml \
          plugins/dcpe_backend/pyproject.toml \
          plugins/facenet_embedder/pyproject.toml \
          examples/cipherface-opcount/pyproject.toml scripts/setup.sh scripts/pyfhel-wheel.sh \
          scripts/haarcascades.py
	VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

# The shared labelled photos are used too when they sit beside the checkout.
SHARED_FACES := $(wildcard ../shared/data/faces/img1.jpg)

demo: setup
	$(BIN)/cipherface demo $(if $(SHARED_FACES),--photos ../shared/data/faces)

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/bench_pairwise.py

# 1:N up to 1M identities: about 25 minutes and 9 GB of memory
bench-gallery: setup
	$(BIN)/python bench/bench_gallery.py

# malformed blobs, 10,000 per kind per backend, in child processes: about an hour
fuzz: setup
	$(BIN)/python bench/fuzz.py

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache

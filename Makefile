# Deep Learning: Practice and Trends — build and test the book.
#   make book   create .venv, install, execute every notebook, write _build/html/index.html
#   make test   lint, unit tests, every notebook under nbval, and a strict book build
# torch is installed first, from TORCH: the default is this CPU-only machine's build; on a
# GPU machine run e.g. `make book TORCH=torch` (see README).

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_PIP_FLAGS ?=
JOBS ?= 2
GPU_JOBS ?= 8
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every process below (tests, notebook kernels, the book's executor) refuses the network.
OFFLINE := PYTHONPATH=$(CURDIR)/tests/offline
SPHINX_STRICT := -W -n --keep-going

.PHONY: setup book test lint pytest book-check timings seeds gpu clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP_FLAGS) "$(TORCH)"
	$(BIN)/python -m pip install -q -e . -r requirements-dev.txt
	touch $@

setup: $(STAMP)

# Executes notebooks through the cache in _build/.jupyter_cache: an unchanged notebook is not re-run.
book: $(STAMP)
	$(OFFLINE) $(BIN)/jupyter-book build . $(SPHINX_STRICT)
	@echo "book: $(CURDIR)/_build/html/index.html"

test: lint pytest book-check

# Notebook code is held to 80 columns so that it fits the book's text column unscrolled.
lint: $(STAMP)
	$(BIN)/ruff check src tests tools conftest.py
	$(BIN)/ruff check --line-length 80 chapters
	$(BIN)/ruff format --check --line-length 80 chapters
	$(BIN)/actionlint .github/workflows/*.yml

# Unit tests and every notebook (nbval executes each once), spread over $(JOBS) workers;
# one BLAS thread per worker so the workers do not fight over the cores.
pytest: $(STAMP)
	$(OFFLINE) OMP_NUM_THREADS=1 $(BIN)/pytest -n $(JOBS) --dist loadscope tests chapters

# The book's structure, cross-references and citations, warnings as errors. Execution is
# off: nbval has already run every notebook once.
book-check: $(STAMP)
	mkdir -p _build/check
	sed 's/^\(  *execute_notebooks:\).*/\1 "off"/' _config.yml > _build/check/_config.yml
	$(OFFLINE) $(BIN)/jupyter-book build . --config _build/check/_config.yml --path-output _build/check $(SPHINX_STRICT)

# Seconds per notebook on this machine's CPU, run one after another; rewrites the README's table.
timings: $(STAMP)
	$(OFFLINE) MPLBACKEND=Agg $(BIN)/python tools/run_notebooks.py --record cpu

# Every notebook for DLPT_SEED 0-4 at DLPT_SCALE 1 and 4, $(JOBS) at a time, every claim checked;
# the figures go to results/claims.json and the book's page results.md (about 2 h on 2 cores).
seeds: $(STAMP)
	$(OFFLINE) MPLBACKEND=Agg $(BIN)/python tools/run_notebooks.py --seeds 0-4 --scales 1,4 --jobs $(JOBS) \
		--record-claims cpu

# The same sweep on a CUDA machine that has PyTorch and dlpt's dependencies but no Jupyter (code
# cells run in order in one Python process per notebook), $(GPU_JOBS) runs at a time. Records the
# README's GPU column (each notebook's seed-0 run at scale 1) and the GPU's figures in results.md.
gpu:
	PYTHONPATH=$(CURDIR)/src MPLBACKEND=Agg $(PYTHON) tools/run_notebooks.py --seeds 0-4 --scales 1,4 \
		--jobs $(GPU_JOBS) --record gpu --record-claims gpu --require-cuda

clean:
	rm -rf _build

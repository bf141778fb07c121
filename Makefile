# Engram: `make serve` runs the service on this machine, `make test` runs the whole suite.
# Both create .venv on first use; every install goes through constraints.txt (torch pin).
# `make lint` runs mypy --strict (pydantic plugin, pyproject.toml) over every package.
# `make load` runs the Locust load test against a running `make serve` (LOAD_ARGS passes options);
# `make bench` and `make scale` are the benchmarks (BENCH_ARGS, SCALE_ARGS); SERVE_ARGS passes
# options to `make serve` (`python -m cluster.local --help`: data dir, ports).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HASH   := $(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
STAMP  := $(VENV)/.installed-$(HASH)
# A stamp of its own: the load extra (locust, matplotlib: load test, chaos and benchmark
# plots) stays out of serve; make test needs it for the chaos test.
LOAD_STAMP := $(VENV)/.load-installed-$(HASH)
PIP    := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: serve test lint bench scale load chaos install clean-data postgres-package browser-package screenshots

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[service,test]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/python -m cluster.local $(SERVE_ARGS)

test: $(LOAD_STAMP) postgres-package browser-package
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# The console's screenshots in docs/console/ (docs/console.md), taken by its browser tests.
screenshots: $(LOAD_STAMP) browser-package
	ENGRAM_SCREENSHOTS_DIR=docs/console $(BIN)/python -m pytest -q -p no:cacheprovider tests/service/test_console.py

# The PostgreSQL tests start a real server (cluster/local_servers/postgres_server.py) from
# Debian's package: installed here where it is missing (as root), or named for the user.
postgres-package:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && { apt-get install -y --no-install-recommends postgresql || \
	      { apt-get update && apt-get install -y --no-install-recommends postgresql; }; }; } || \
	  { echo "make test needs Debian's postgresql package: sudo apt-get install postgresql"; exit 1; }

# The console's tests (tests/service/test_console.py) drive Debian's chromium through its
# chromedriver: installed here where missing (as root), or named for the user.
browser-package:
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || \
	  { [ "$$(id -u)" = 0 ] && { apt-get install -y --no-install-recommends chromium chromium-driver || \
	      { apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; }; }; } || \
	  { echo "make test needs Debian's chromium and chromium-driver: sudo apt-get install chromium chromium-driver"; exit 1; }

lint: $(STAMP)
	$(BIN)/python -m mypy --no-incremental serve shards models engram cluster

bench: $(LOAD_STAMP)
	$(BIN)/python -m cluster.bench $(BENCH_ARGS)

scale: $(LOAD_STAMP)
	$(BIN)/python -m cluster.scale $(SCALE_ARGS)

$(LOAD_STAMP): $(STAMP)
	$(PIP) -e ".[service,test,load]"
	rm -f $(VENV)/.load-installed-* && touch $@

load: $(LOAD_STAMP)
	$(BIN)/python -m loadtests.run $(LOAD_ARGS)

# Faults under load on a service of its own (cluster/chaos.py): CHAOS_ARGS="--form production"
# adds a PostgreSQL restart.
chaos: $(LOAD_STAMP)
	$(BIN)/python -m cluster.chaos $(CHAOS_ARGS)

clean-data:
	rm -rf data

# The two commands of the README: `make demo` and `make test`. Nothing else is assumed
# on the machine than python3 (3.11+) and make; everything else installs into .venv, except
# the browser the browser tests drive: Debian's chromium, which scripts/install-browser.sh
# installs with apt-get when /usr/bin/chromium is missing (a no-op when it is there; without
# apt or root it says so and tests/browser skips, naming what is missing). See docs/testing.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-scale-out install browser sandbox bench bench-workers clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Not part of the stamp: checked on every `make install`/`make test` (a millisecond when chromium is
# there), so a machine that kept .venv but not the system packages (a new machine) gets it back.
browser:
	@bash scripts/install-browser.sh

install: $(STAMP) browser

demo: $(STAMP)
	$(BIN)/o2c demo

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# Issue 10's proof, too long for every `make test`: 4 workers and 2 daemons on one PostgreSQL ledger
# book 5,000 orders exactly once within the vendors' limits (tests/test_scale_out.py, about 4 minutes).
test-scale-out: $(STAMP)
	O2C_SCALE_OUT=1 O2C_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest -q -s tests/test_scale_out.py

sandbox: $(STAMP)
	$(BIN)/o2c sandbox

# Benchmarks (docs: benchmarks/RESULTS.md): four runs against the sandbox, about 15 minutes.
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# Issue 10: 1, 2 and 4 `o2c worker` processes on one PostgreSQL ledger, engine- and limit-bound (about
# 5 minutes; needs PostgreSQL). Writes benchmarks/results/workers.json, which RESULTS.md's section 5 shows
# (rewritten here and by the next `make bench`).
bench-workers: $(STAMP)
	$(BIN)/python benchmarks/bench_workers.py

clean:
	rm -rf $(VENV) var build *.egg-info

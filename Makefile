# Two set-up commands: `make demo` and `make test`. Each creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := data/generated/feb-2026-crash
RUN := runs/demo
# The compile cache is the CLI's default ($CASCADE_CACHE_DIR, else ~/.cache/cascade), so what
# `make demo` compiled is what the next `backtest run` loads. The tests use their own (.cache/test).
# pip: errors only (-qq hides setuptools' build chatter), no pip version check.
PIP := $(BIN)/python -m pip --disable-pip-version-check
PIPQ := $(PIP) install -qq

.PHONY: demo test test-fast bench clean

$(BIN)/python:
	@echo "Creating $(VENV) (first run only)"
	@$(PY) -m venv $(VENV)
	@$(PIPQ) --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "Installing Cascade and its dependencies into $(VENV)"
	@$(PIPQ) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "Installing Cascade with the test tools into $(VENV)"
	@$(PIPQ) -e '.[dev]'
	@touch $@ $(VENV)/.installed

$(SAMPLE)/instruments.json: | $(VENV)/.installed
	$(BIN)/backtest data generate --scenario feb-2026-crash --out $(SAMPLE) --seed 7

# Generate (or reuse) the sample crash dataset, validate and summarise it, run the reference
# strategy on it and write the report (runs/demo/report/report.html, .pdf and PNGs).
demo: $(VENV)/.installed $(SAMPLE)/instruments.json
	$(BIN)/backtest data validate $(SAMPLE)
	$(BIN)/backtest data inspect $(SAMPLE)
	$(BIN)/backtest run reference --data $(SAMPLE) --out $(RUN) --overwrite --report

# The whole test suite (what CI runs), slow tests included.
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The fast tier: everything but the tests marked slow (cold compiles, real processes, big data).
test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow"

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_engine.py --ticks 10000000

clean:
	rm -rf $(VENV) data/generated runs .cache

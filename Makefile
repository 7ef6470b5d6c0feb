# Two set-up commands: `make demo` and `make test`. Each creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := data/generated/feb-2026-crash
RUN := runs/demo
export CASCADE_CACHE_DIR ?= $(CURDIR)/.cache/cascade

.PHONY: demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

$(SAMPLE)/instruments.json: | $(VENV)/.installed
	$(BIN)/backtest data generate --scenario feb-2026-crash --out $(SAMPLE) --seed 7

# Generate (or reuse) the sample crash dataset, validate and summarise it, run the reference
# strategy on it and write the report (runs/demo/report/report.html, .pdf and PNGs).
demo: $(VENV)/.installed $(SAMPLE)/instruments.json
	$(BIN)/backtest data validate $(SAMPLE)
	$(BIN)/backtest data inspect $(SAMPLE)
	$(BIN)/backtest run reference --data $(SAMPLE) --out $(RUN) --report

# The whole test suite (what CI runs).
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_engine.py --ticks 10000000

clean:
	rm -rf $(VENV) data/generated runs .cache

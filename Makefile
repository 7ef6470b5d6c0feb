# Two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := data/generated/feb-2026-crash
RUN := runs/demo

.PHONY: demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(SAMPLE)/instruments.json: | $(VENV)/.installed
	$(BIN)/backtest data generate --scenario feb-2026-crash --out $(SAMPLE) --seed 7

demo: $(VENV)/.installed $(SAMPLE)/instruments.json
	$(BIN)/backtest data inspect $(SAMPLE)
	@if $(BIN)/backtest run --help >/dev/null 2>&1; then \
	  $(BIN)/backtest run reference --data $(SAMPLE) --out $(RUN) --report; \
	fi

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) data/generated runs .cache

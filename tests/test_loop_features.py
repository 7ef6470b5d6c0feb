"""The loop's optional steps (codegen.LoopFeatures, pack.loop_features): which ones each run
compiles, that a loop without them gives exactly the full loop's results, and that a loan opened
by a loop compiled without the loan checks stops the run."""
import pytest

import backtest as bt
from backtest import engine, pack
from backtest.batch import run_batch
from backtest.errors import StrategyError
from backtest.plugins import codegen
from backtest.plugins.codegen import ALL_STEPS, LoopFeatures
from engine_fixtures import assert_results_identical, make_market_dataset
from test_l2_book import BookReader, book_rows
from test_l2_book import dataset as book_dataset
from test_loans import spot_dataset

LEVERED = {"initial_balance": 20_000.0, "leverage": {"S0": 10.0, "S1": 10.0}, "margin": {"funding": "0.0001"}}
LOAN_CFG = {"initial_balance": 100_000.0, "sample_interval": "0", "loans": {"apr": 0.0}}
LOAN_PATH = [70_000.0, 70_000.0, 67_800.0, 61_000.0, 61_000.0]  # into the warning band, then past the LLTV


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("features")
    market = base / "market"
    make_market_dataset(market, 40_000, nsym=2, period=8_000)
    book = book_dataset(base / "book", [(1, 100.0, 1.0), (2, 98.5, 1.0), (4, 100.0, 1.0)], book_rows(0),
                        quotes=[(0, 99.0, 101.0, 1.0, 1.0), (3, 99.0, 101.0, 1.0, 1.0)])
    spot = spot_dataset(base / "spot", LOAN_PATH, step_ns=1_000_000)
    return {"market": market, "book": book, "spot": spot}


CASES = {  # strategy, dataset, config -> the steps its loop is compiled with
    "reference": ("reference", "market", LEVERED, LoopFeatures(book=False, estimators=False, loans=False, rare=False)),
    "impact": ("reference", "market", {**LEVERED, "execution": {"slippage": "sqrt_impact"}},
               LoopFeatures(book=False, estimators=True, loans=False, rare=False)),
    "book": (BookReader, "book", {"sample_interval": "0"}, LoopFeatures(book=True, estimators=False, loans=False)),
    "loans": ("loan_borrower", "spot", LOAN_CFG, LoopFeatures(book=False, estimators=False, loans=True)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_compiles_the_steps_its_data_config_and_strategy_need(data, case):
    strategy, root, cfg, want = CASES[case]
    assert engine.run_features(strategy, data[root], config=cfg) == want


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_a_loop_without_the_steps_gives_the_full_loops_results(data, case, monkeypatch):
    strategy, root, cfg, want = CASES[case]
    params = {"sym": "S0"} if strategy == "reference" else None
    alone = bt.run(strategy, data[root], params=params, config=cfg)
    assert alone.manifest["headline"]["fills"] > 0 or case == "book"
    monkeypatch.setattr(engine, "loop_features", lambda cls, c: ALL_STEPS)
    monkeypatch.setattr(pack, "rare_paths_needed", lambda cls, c: True)  # and the kernels' every path
    full = bt.run(strategy, data[root], params=params, config=cfg)
    assert_results_identical(alone, full)


def test_the_generated_module_binds_the_steps_and_is_named_by_them():
    from strategies.reference import Reference

    key = codegen.strategy_key(Reference)
    template = codegen._template_source()
    none = LoopFeatures(False, False, False)
    text = codegen._module_text(Reference, key, template, none)
    assert "RUN_BOOK = False" in text and "RUN_ESTIMATORS = False" in text and "RUN_LOANS = False" in text
    assert none.tag() == "_f000" and LoopFeatures(True, False, True).tag() == "_f101"
    assert ALL_STEPS.tag() == ""  # the full loop keeps the name it had before the steps


@pytest.mark.slow
def test_a_loan_opened_by_a_loop_without_the_loan_checks_stops_the_run(data, monkeypatch):
    """A strategy that opened a loan without its sources naming loan_open (here: the scan made
    to miss it) would run on with the loan never checked: the run stops with one line instead."""
    monkeypatch.setattr(pack, "names_in_sources", lambda cls, names: False)
    with pytest.raises(StrategyError, match="names loan_open"):
        bt.run("loan_borrower", data["spot"], config=LOAN_CFG)
    out = run_batch("loan_borrower", data["spot"], [{}, {}], config=LOAN_CFG)
    assert all(isinstance(r, StrategyError) and "loan_open" in str(r) for r in out)


def test_the_cold_start_helper_compiles_the_steps_the_loop_calls_first(monkeypatch):
    """core/warm.py: build_loop tells the helper which optional steps its loop leaves out; the
    helper compiles every step once, those last (before the SDK's), the others in STEPS order."""
    from backtest.core import warm
    from strategies.reference import Reference

    calls = []
    monkeypatch.setattr(warm, "start", lambda unused=(): calls.append(list(unused)))
    codegen.build_loop(Reference, features=LoopFeatures(book=True, estimators=False, loans=False))
    codegen.build_loop(Reference, features=LoopFeatures(book=False, estimators=False, loans=False, rare=False))
    assert calls == [["estimators", "loans", "bars"], ["book", "estimators", "loans", "rare", "bars"]]
    order = warm.helper_steps(calls[0])
    assert sorted(map(id, order)) == sorted(map(id, warm.STEPS))
    assert order[-4:] == (warm._loans, warm._estimators, warm._bars, warm._sdk)
    assert [s for s in order[:-4]] == [s for s in warm.STEPS if s in order[:-4]]
    assert warm.helper_steps() == warm.STEPS
    lean = warm.helper_steps(calls[1])  # no lean loop calls the book's or the loans' kernels
    assert warm._book not in lean and warm._loans not in lean and lean[-3:] == (warm._estimators, warm._bars, warm._sdk)


@pytest.mark.slow
def test_a_sweep_compiles_first_the_loop_its_batches_run(data, monkeypatch):
    """sweep_dispatch._compile_first compiles the loop before workers start, so that they only
    load it: it must be the loop (the same LoopFeatures) a batch of the same run then builds."""
    import backtest.plugins.codegen as cg
    from backtest import sweep_dispatch
    from strategies.reference import Reference

    cfg = bt.RunConfig.from_dict(CASES["impact"][2])
    built = []
    original = cg.build_loop

    def spy(cls, refcounted=False, features=ALL_STEPS):
        built.append(features)
        return original(cls, refcounted, features)

    monkeypatch.setattr(cg, "build_loop", spy)
    sweep_dispatch._compile_first(Reference, data["market"], None, None, None, cfg)
    first = built[-1]
    assert first == CASES["impact"][3]
    assert original(Reference, features=first).signatures  # compiled (or loaded) here
    run_batch(Reference, data["market"], [{"sym": "S0"}], config=cfg)
    assert built[-1] == first

"""strategies/loan_borrower.py on small crafted spot paths: unprotected, repay, top-up, budgets."""
import polars as pl
import pytest

import backtest as bt
from test_loans import spot_dataset

MS = 1_000_000
P0 = 70_000.0
DEBT = 0.75 * P0  # the loan opens at the second trade, at P0
# Morpho liquidation incentive factor computed from the LLTV (86%): 1.0438413..., not 1.0438
LIF = 1.0 / (0.3 * 0.86 + 1.0 - 0.3)
WARN_PX = P0 * 0.75 / 0.774 * 0.999  # just inside the 77.4 % warning band
LIQ_PX = P0 * 0.75 / 0.86 * 0.999  # just past the 86 % LLTV
PATH = [P0, P0, WARN_PX, LIQ_PX, LIQ_PX]


@pytest.fixture(scope="module")
def crash_path(tmp_path_factory):
    return spot_dataset(tmp_path_factory.mktemp("lb") / "d", PATH, step_ns=MS)


def run(root, **params):
    return bt.run("loan_borrower", root, params=params,
                  config={"initial_balance": 100_000.0, "sample_interval": "0", "loans": {"apr": 0.0}})


def state(res):
    return res.manifest["strategy"]["state"]


def events(res):
    return res.loans["event"].to_list()


def row(res, event, k=0):
    return res.loans.filter(pl.col("event") == event).row(k, named=True)


def test_resolves_with_documented_params():
    cls = bt.resolve_strategy("loan_borrower")
    assert cls.__name__ == "LoanBorrower"
    params = cls.params()
    assert set(params) == {"sym", "coins", "target_ltv", "top_up", "reserve_coins", "repay_in_band",
                           "reserve_cash", "restore_ltv"}
    doc = cls.__doc__ + __import__(cls.__module__, fromlist=["x"]).__doc__
    for name, spec in params.items():
        assert spec.doc and name in doc
    assert params["target_ltv"].default == 0.75 and params["sym"].default == "BTC-USDT"
    assert params["top_up"].default is False and params["repay_in_band"].default is False


def test_unprotected_loan_is_liquidated_at_the_lltv_with_the_penalty(crash_path):
    res = run(crash_path)
    assert events(res) == ["open", "margin_call", "liquidation", "closed"]
    opened = row(res, "open")
    assert opened["amount"] == pytest.approx(DEBT) and opened["ltv"] == pytest.approx(0.75)
    call = row(res, "margin_call")
    assert 0.774 <= call["ltv"] < 0.86 and call["price"] == pytest.approx(WARN_PX)
    liq = row(res, "liquidation")
    assert liq["price"] == pytest.approx(LIQ_PX)
    assert DEBT / (1.0 * liq["price"]) >= 0.86  # the first trade past the LLTV
    assert liq["amount"] == pytest.approx(DEBT)  # the whole debt is repaid by the lender
    assert liq["penalty"] == pytest.approx(DEBT * (LIF - 1))
    assert liq["seized_qty"] == pytest.approx(DEBT * LIF / LIQ_PX)
    st = state(res)
    assert st["loan"] == 1 and st["open_price"] == P0 and st["borrowed"] == pytest.approx(DEBT)
    assert st["calls"] == 1 and st["last_call_ratio"] == pytest.approx(call["ltv"] / 0.86)
    assert st["liquidated"] == 1 and st["seized_qty"] == pytest.approx(liq["seized_qty"])
    assert st["liq_price"] == pytest.approx(LIQ_PX / LIF)  # debt repaid per coin seized
    assert st["repays"] == 0 and st["top_ups"] == 0
    h = res.headline
    assert h["loan_liquidations"] == 1 and h["loan_penalties"] == pytest.approx(DEBT * (LIF - 1))
    # what is left of the collateral is back in the spot position
    assert h["positions"]["BTC-USDT"] == pytest.approx(1.0 - DEBT * LIF / LIQ_PX)
    # the penalty is lost on top of the market move
    assert h["final_equity"] == pytest.approx(100_000.0 + (LIQ_PX - P0) - DEBT * (LIF - 1))


def test_repay_in_band_survives_the_same_path(crash_path):
    res = run(crash_path, repay_in_band=True)
    assert events(res) == ["open", "margin_call", "repay"]
    rep = row(res, "repay")
    pay = DEBT - 0.65 * WARN_PX
    assert rep["amount"] == pytest.approx(pay) and rep["ltv"] == pytest.approx(0.65)
    st = state(res)
    assert st["repays"] == 1 and st["repaid"] == pytest.approx(pay)
    assert st["liquidated"] == 0 and st["calls"] == 1 and st["last_error"] == 0
    assert res.headline["loan_liquidations"] == 0 and res.headline["loan_penalties"] == 0.0
    assert len(res.liquidations) == 0
    # at the price that liquidated the unprotected loan, this one is back under the warning band
    assert (DEBT - pay) / LIQ_PX < 0.774
    assert st["max_ltv"] == pytest.approx(DEBT / WARN_PX)
    # no penalty: equity moved with the market only
    assert res.headline["final_equity"] == pytest.approx(100_000.0 + (LIQ_PX - P0))


def test_top_up_survives_the_same_path(crash_path):
    res = run(crash_path, top_up=True, reserve_coins=0.25)
    assert events(res) == ["open", "margin_call", "add_collateral"]
    add = row(res, "add_collateral")
    need = DEBT / (0.65 * WARN_PX) - 1.0
    assert add["amount"] == pytest.approx(need) and add["ltv"] == pytest.approx(0.65)
    assert add["collateral_qty"] == pytest.approx(1.0 + need)
    st = state(res)
    assert st["top_ups"] == 1 and st["coins_added"] == pytest.approx(need)
    assert st["liquidated"] == 0 and len(res.liquidations) == 0
    # the reserve coins were bought at the start; what was not pledged stays in the spot position
    assert res.fills["qty"].sum() == pytest.approx(1.25)
    assert res.headline["positions"]["BTC-USDT"] == pytest.approx(0.25 - need)
    assert res.headline["final_equity"] == pytest.approx(100_000.0 + 1.25 * (LIQ_PX - P0))


def test_top_up_then_repay_when_the_reserve_coins_run_short(crash_path):
    res = run(crash_path, top_up=True, reserve_coins=0.05, repay_in_band=True)
    assert events(res) == ["open", "margin_call", "add_collateral", "repay"]
    add, rep = row(res, "add_collateral"), row(res, "repay")
    assert add["amount"] == pytest.approx(0.05)
    assert rep["amount"] == pytest.approx(DEBT - 0.65 * 1.05 * WARN_PX)
    assert rep["ltv"] == pytest.approx(0.65)
    st = state(res)
    assert (st["top_ups"], st["repays"], st["liquidated"]) == (1, 1, 0)


def test_a_small_cash_reserve_only_delays_the_liquidation(tmp_path):
    # the repayment is capped by the budget: LTV stays high and the deeper fall liquidates
    root = spot_dataset(tmp_path / "d", PATH + [LIQ_PX * 0.97], step_ns=MS)
    res = run(root, repay_in_band=True, reserve_cash=1_000.0)
    ev = events(res)
    assert ev[:3] == ["open", "margin_call", "repay"] and "liquidation" in ev
    assert row(res, "repay")["amount"] == pytest.approx(1_000.0)
    liq = row(res, "liquidation")
    assert liq["amount"] == pytest.approx(DEBT - 1_000.0)
    assert liq["penalty"] == pytest.approx((DEBT - 1_000.0) * (LIF - 1))
    st = state(res)
    assert st["repays"] == 1 and st["repaid"] == pytest.approx(1_000.0) and st["liquidated"] == 1


def test_every_new_crossing_of_the_band_is_defended(tmp_path):
    # into the band, repaid to 0.65, out of it, then a deeper fall enters the band again
    debt1 = 0.65 * WARN_PX  # debt after the first repayment (1 coin)
    px2 = debt1 / 0.774 * 0.999  # LTV 77.5 %: the band again
    root = spot_dataset(tmp_path / "d", PATH[:3] + [P0, px2, px2], step_ns=MS)
    res = run(root, repay_in_band=True)
    assert events(res) == ["open", "margin_call", "repay", "margin_call", "repay"]
    reps = res.loans.filter(pl.col("event") == "repay")
    assert reps["ltv"].to_list() == pytest.approx([0.65, 0.65])
    st = state(res)
    assert st["calls"] == 2 and st["repays"] == 2 and st["liquidated"] == 0
    assert st["repaid"] == pytest.approx(DEBT - 0.65 * px2)


def test_lower_target_ltv_is_never_called(crash_path):
    res = run(crash_path, target_ltv=0.5)
    assert events(res) == ["open"]
    assert row(res, "open")["amount"] == pytest.approx(0.5 * P0)
    st = state(res)
    assert st["calls"] == 0 and st["liquidated"] == 0
    assert st["max_ltv"] == pytest.approx(0.5 * P0 / LIQ_PX)


def test_loan_above_the_max_opening_ltv_is_refused(crash_path):
    res = run(crash_path, target_ltv=0.8)
    assert res.loans.height == 0
    st = state(res)
    assert st["loan"] == 0 and st["open_error"] == int(bt.Reason.INSUFFICIENT_MARGIN)
    assert res.headline["positions"]["BTC-USDT"] == pytest.approx(1.0)  # the coins stay bought


@pytest.mark.slow
def test_on_the_generated_crash_75_dies_50_and_repay_survive(tmp_path):
    from backtest.data.generate import generate_dataset

    root = tmp_path / "feb"
    generate_dataset("feb-2026-crash", root, seed=3, scale=0.05)
    out = {}
    for label, params in {"75": {}, "50": {"target_ltv": 0.5}, "75+repay": {"repay_in_band": True}}.items():
        out[label] = bt.run("loan_borrower", root, params=params, symbols=["BTC-USDT"])
    assert state(out["75"])["liquidated"] == 1
    assert state(out["50"])["liquidated"] == 0 and state(out["50"])["calls"] == 0
    assert state(out["75+repay"])["liquidated"] == 0 and state(out["75+repay"])["repays"] >= 1
    assert out["75+repay"].headline["final_equity"] > out["75"].headline["final_equity"]

"""Issue #14.15: Morpho bad debt when the collateral cannot cover debt * LIF, the LIF computed from
the LLTV, and Coinbase's loan health bands (loans table column and the loan_health accessor)."""
import polars as pl
import pytest

import backtest as bt
from backtest import LoanHealth, Strategy, Symbol, buy, loan_health, loan_open, param, position
from backtest import margin

from test_loans import LIF, spot_dataset

P0 = 70_000.0


class HealthWatch(Strategy):
    """Buy 1 coin, borrow at `ltv`, then read loan_health at every later trade: the bands seen are
    kept as digits (band + 1) of `seen`."""

    sym: Symbol = param("BTC-USDT")
    ltv: float = param(0.5)
    loan: int = 0
    bought: bool = False
    seen: int = 0
    closed: int = 0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if not self.bought:
            if buy(c, sym, 1.0) > 0:
                self.bought = True
        elif self.loan == 0 and position(c, sym) >= 1.0:
            self.loan = loan_open(c, sym, 1.0, self.ltv * price)
        else:
            h = loan_health(c, self.loan)
            if h < 0:
                self.closed += 1
            else:
                self.seen = self.seen * 10 + h + 1


def run(root, cls=HealthWatch, **params):
    return bt.run(cls, root, params=params, config={"initial_balance": 100_000.0, "sample_interval": "0",
                                                    "loans": {"apr": 0.0}})


def test_lif_is_computed_from_the_lltv():
    assert margin.morpho_liquidation_incentive(0.86) == pytest.approx(1.0438413361169103, rel=1e-15)
    assert margin.morpho_liquidation_incentive(0.86) == pytest.approx(LIF, rel=1e-15)
    assert margin.morpho_liquidation_incentive(0.3) == 1.15  # capped


def test_collateral_short_of_debt_times_lif_leaves_bad_debt(tmp_path):
    # 1 BTC bought at 70,000, 52,500 borrowed (LTV 75%); a gap to 45,000: LTV 116.7%, and
    # 52,500 * LIF / 45,000 = 1.218 BTC would be needed. Morpho seizes the 1 BTC and repays
    # 45,000 / LIF = 43,110.18; the other 9,389.82 is bad debt, the lenders' loss.
    from lev_strategies import Borrower

    root = spot_dataset(tmp_path / "d", [P0, P0, 45_000.0, 45_000.0], step_ns=1_000_000)
    res = bt.run(Borrower, root, config={"initial_balance": 100_000.0, "sample_interval": "0",
                                         "loans": {"apr": 0.0}})
    liq = res.loans.filter(pl.col("event") == "liquidation").row(0, named=True)
    debt = 0.75 * P0
    assert liq["seized_qty"] == 1.0
    assert liq["amount"] == pytest.approx(45_000.0 / LIF, rel=1e-12)
    assert liq["bad_debt"] == pytest.approx(debt - 45_000.0 / LIF, rel=1e-12)
    assert liq["debt"] == 0.0
    assert liq["penalty"] == 0.0  # the collateral is worth less than the debt the borrower is freed of
    assert res.loans["event"].to_list()[-1] == "closed"
    assert res.loans["bad_debt"].sum() == liq["bad_debt"]
    # the borrower's outcome: the coin is gone, the borrowed cash stays
    assert res.headline["positions"]["BTC-USDT"] == 0.0
    assert res.headline["final_equity"] == pytest.approx(100_000.0 - P0 + debt, rel=1e-12)


def test_no_bad_debt_when_the_collateral_covers_it(tmp_path):
    from lev_strategies import Borrower

    liq_px = P0 * 0.75 / 0.86 * 0.999
    root = spot_dataset(tmp_path / "d", [P0, P0, liq_px, liq_px], step_ns=1_000_000)
    res = bt.run(Borrower, root, config={"initial_balance": 100_000.0, "sample_interval": "0",
                                         "loans": {"apr": 0.0}})
    liq = res.loans.filter(pl.col("event") == "liquidation").row(0, named=True)
    assert liq["bad_debt"] == 0.0 and liq["amount"] == pytest.approx(0.75 * P0)


def test_health_bands_in_the_loans_table_and_the_accessor(tmp_path):
    # borrow 35,000 on 1 BTC at 70,000 (LTV 50%: good); Coinbase's bands at LLTV 86%: fair from
    # 51.6%, danger from 77.4%. 62,000 -> 56.5% fair; 50,000 -> 70% fair; 45,000 -> 77.8% danger;
    # back to 70,000 -> good.
    prices = [P0, P0, P0, 62_000.0, 50_000.0, 45_000.0, P0]
    res = run(spot_dataset(tmp_path / "d", prices, step_ns=1_000_000))
    st = res.manifest["strategy"]["state"]
    assert st["seen"] == 12231  # GOOD, FAIR, FAIR, DANGER, GOOD (band + 1 per trade)
    assert st["closed"] == 0
    rows = res.loans
    assert rows.filter(pl.col("event") == "open")["health"].to_list() == [LoanHealth.GOOD]
    assert rows.filter(pl.col("event") == "margin_call")["health"].to_list() == [LoanHealth.DANGER]
    assert [int(h) for h in LoanHealth] == [0, 1, 2]


def test_health_band_boundaries(tmp_path):
    # a loan opened at 60% of 86% = 51.6% is FAIR, just below is GOOD
    for ltv, band in [(0.5159, LoanHealth.GOOD), (0.5161, LoanHealth.FAIR), (0.75, LoanHealth.FAIR)]:
        res = run(spot_dataset(tmp_path / f"d{ltv}", [P0, P0, P0], step_ns=1_000_000), ltv=ltv)
        assert res.loans.filter(pl.col("event") == "open")["health"].to_list() == [band]
        assert res.manifest["strategy"]["state"]["seen"] == band + 1

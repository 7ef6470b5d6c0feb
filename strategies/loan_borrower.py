"""Loan borrower: hold BTC as collateral for a USD loan, and defend it in the warning band.

Idea: the position of someone who borrows against their bitcoin instead of selling it (Coinbase /
Morpho style loans: liquidation at LTV 0.86 with a 4.38 % penalty, see docs/margin.md). At the
first trade of `sym` (a SPOT symbol) it buys `coins` BTC (plus `reserve_coins` with `top_up`);
once they are in the spot position it pledges `coins` as collateral and borrows
`target_ltv` x the collateral's value. LTV = debt / (collateral x price) then rises as BTC falls:
a 75 % loan reaches the 86 % LLTV after a fall of 1 - 0.75 / 0.86 = 12.8 %.

Defence, in `on_margin_call` (fired once each time the LTV enters the warning band, 77.4 % by
default; for loans `margin_ratio` = LTV / LLTV):
    top_up          move reserve coins (bought at the start, kept in the spot position) into the
                    collateral, enough to bring the LTV back to `restore_ltv`, within what is
                    left of `reserve_coins`;
    repay_in_band   then repay debt from the account's cash (which holds the borrowed USD unless
                    it was spent), enough to bring the LTV back to `restore_ltv`, within what is
                    left of the `reserve_cash` budget.
With neither, the loan rides the market: at the LLTV the lender seizes collateral worth
debt x 1.0438413 (the Morpho incentive at 86% LLTV) and closes the loan (or restores the opening LTV with `loans.partial`).

Parameters:
    sym            spot symbol bought and pledged (default BTC-USDT)
    coins          BTC pledged as collateral (default 1.0; a multiple of the lot size)
    target_ltv     LTV of the loan at opening (default 0.75 = loans.max_open_ltv; lower is safer)
    top_up         add reserve coins to the collateral on a margin call (default false)
    reserve_coins  BTC bought besides `coins` and kept for top-ups (default 0.25; only with top_up)
    repay_in_band  repay part of the debt on a margin call (default false)
    reserve_cash   USD budget for repayments over the whole run (default 25,000)
    restore_ltv    the LTV a top-up or repayment aims for (default 0.65)

State worth reading after a run (`res.manifest['strategy']['state']`): `loan` (id, 0 = none),
`open_price`, `borrowed`, `open_error` (reason code if the loan was refused), `calls`,
`last_call_ratio`, `max_ltv`, `top_ups`, `coins_added`, `repays`, `repaid`, `liquidated`,
`liq_price`, `seized_qty`.
"""
import numpy as np

from backtest import (
    Strategy, Symbol, buy, loan_add_collateral, loan_collateral, loan_debt, loan_ltv, loan_open,
    loan_repay, param, position,
)


class LoanBorrower(Strategy):
    """Borrow USD against spot BTC at a target LTV; optionally top up or repay in the warning band."""

    sym: Symbol = param("BTC-USDT", "spot symbol bought and pledged as collateral")
    coins: float = param(1.0, "BTC pledged as collateral")
    target_ltv: float = param(0.75, "loan-to-value at opening (at most loans.max_open_ltv)")
    top_up: bool = param(False, "on a margin call, add reserve coins to the collateral")
    reserve_coins: float = param(0.25, "BTC bought besides `coins` and kept for top-ups (with top_up)")
    repay_in_band: bool = param(False, "on a margin call, repay part of the debt from cash")
    reserve_cash: float = param(25_000.0, "USD budget for repayments over the whole run")
    restore_ltv: float = param(0.65, "LTV a top-up or a repayment brings the loan back to")
    # state
    bought: bool = False
    done_open: bool = False
    loan: int = 0
    open_ts: int = 0
    open_price: float = 0.0
    borrowed: float = 0.0
    open_error: int = 0
    calls: int = 0
    last_call_ratio: float = 0.0
    max_ltv: float = 0.0
    top_ups: int = 0
    coins_added: float = 0.0
    repays: int = 0
    repaid: float = 0.0
    last_error: int = 0
    liquidated: int = 0
    liq_price: float = 0.0
    seized_qty: float = 0.0

    def on_tick(self, c, ts_ns, sym, price, qty, side):
        if sym != self.sym:
            return
        if not self.bought:
            q = self.coins + (self.reserve_coins if self.top_up else 0.0)
            if buy(c, sym, q) > 0:
                self.bought = True
            return
        if not self.done_open:
            if position(c, sym) >= self.coins - 1e-12:
                self.done_open = True
                r = loan_open(c, sym, self.coins, self.target_ltv * self.coins * price)
                if r > 0:
                    self.loan = r
                    self.open_ts = ts_ns
                    self.open_price = price
                    self.borrowed = self.target_ltv * self.coins * price
                else:
                    self.open_error = -r
            return
        if self.loan > 0:
            ltv = loan_ltv(c, self.loan)
            if ltv > self.max_ltv:  # False for NaN (the loan is closed)
                self.max_ltv = ltv

    def on_margin_call(self, c, ts_ns, sym, margin_ratio):
        if sym != self.sym or self.loan <= 0:
            return
        self.calls += 1
        self.last_call_ratio = margin_ratio
        ltv = loan_ltv(c, self.loan)
        if not np.isfinite(ltv):
            return
        if ltv > self.max_ltv:
            self.max_ltv = ltv
        debt = loan_debt(c, self.loan)
        coll = loan_collateral(c, self.loan)
        px = debt / (ltv * coll)
        if self.top_up:
            need = debt / (self.restore_ltv * px) - coll
            avail = min(self.reserve_coins - self.coins_added, position(c, sym))
            q = min(need, avail)
            if q > 1e-9:
                r = loan_add_collateral(c, self.loan, q)
                if r == 0:
                    self.top_ups += 1
                    self.coins_added += q
                    coll += q
                else:
                    self.last_error = -r
        if self.repay_in_band:
            pay = min(debt - self.restore_ltv * coll * px, self.reserve_cash - self.repaid)
            if pay > 1e-6:
                r = loan_repay(c, self.loan, pay)
                if r == 0:
                    self.repays += 1
                    self.repaid += pay
                else:
                    self.last_error = -r

    def on_liquidation(self, c, ts_ns, sym, qty, price):
        if sym == self.sym:
            self.liquidated += 1
            self.liq_price = price
            self.seized_qty += qty

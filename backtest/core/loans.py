"""Crypto-backed loans: USD debt against spot collateral, Coinbase/Morpho style (docs/margin.md).

Collateral comes out of the account's spot position and keeps its cost basis, so
equity = balance + unrealised PnL + Σ loans (collateral * price - cost basis - debt).
Debt accrues interest continuously at the configured APR. When LTV = debt / (collateral * price)
reaches the LLTV, collateral worth repaid * LIF is seized to repay debt (all of it, or with
loans.partial just enough to restore the maximum opening LTV); what is left goes back to the spot
position. When the collateral is worth less than debt * LIF, Morpho seizes all of it and repays
collateral * price / LIF; the rest of the debt is bad debt, the lenders' loss (the borrower keeps
the cash either way). Every loan row carries the loan's health band (LoanHealth). Between the
warning LTV and the LLTV, on_margin_call fires once per crossing with margin_ratio = LTV / LLTV.

Strategy calls (SDK) write their rows into a small ring in the context (hooks have no access to
the output buffers); the loop copies the ring into the loans table after each event.
"""
import numpy as np

from .account import disarm_guard, iso_total, mark_to_market, val_px
from .codes import (
    H_DANGER, H_FAIR, H_GOOD, R_INSUFFICIENT_BALANCE, R_INSUFFICIENT_MARGIN, R_INVALID_QTY, R_TOO_MANY,
    R_UNKNOWN_ORDER, R_UNKNOWN_SYMBOL, T_SPOT,
)
from .jit import kernel
from .liquidation import write_liq_row
from .margin_math import loan_repay_to_restore

YEAR_NS = 365.0 * 86_400e9
FAIR_FRACTION = 0.6  # Coinbase's "Fair" band starts at 60% of the LLTV
EV_OPEN, EV_BORROW, EV_REPAY, EV_ADD, EV_CALL, EV_LIQ, EV_CLOSED = 0, 1, 2, 3, 4, 5, 6


@kernel
def _accrue(c, j, t):
    dt = t - c.loans[j].ts
    if dt > 0:
        new = c.loans[j].debt * np.exp(c.run.loan_apr * (dt / YEAR_NS))
        acc = new - c.loans[j].debt
        c.loans[j].debt = new
        c.loans[j].interest += acc
        c.acct.interest += acc
        c.loans[j].ts = t


@kernel
def _ltv(ln, px):
    v = ln.coll * px
    return ln.debt / v if v > 0.0 else np.inf


@kernel
def health_band(run, debt, ltv):
    """LoanHealth of a loan at this LTV: GOOD below 60% of the LLTV, DANGER from the warning LTV
    (Coinbase: 51.6% and 77.4% at LLTV 86%), FAIR between; GOOD without debt."""
    if not (debt > 0.0):
        return H_GOOD
    if ltv >= run.loan_warning_ltv:
        return H_DANGER
    if ltv >= FAIR_FRACTION * run.loan_lltv:
        return H_FAIR
    return H_GOOD


@kernel
def _row(rows, k, c, j, t, event, amount, px, penalty, seized, bad_debt):
    rows[k].ts_ns = t
    rows[k].loan_id = j + 1
    rows[k].sym = c.loans[j].sym
    rows[k].event = event
    rows[k].amount = amount
    rows[k].debt = c.loans[j].debt
    rows[k].collateral_qty = c.loans[j].coll
    rows[k].price = px
    rows[k].ltv = _ltv(c.loans[j], px)
    rows[k].interest = c.loans[j].interest
    rows[k].penalty = penalty
    rows[k].seized_qty = seized
    rows[k].bad_debt = bad_debt
    rows[k].health = health_band(c.run, rows[k].debt, rows[k].ltv)
    c.loans[j].interest = 0.0


@kernel
def _take_spot(run, ins, mkt, pos, qty):
    """Move qty coins out of the spot position of s; returns their cost basis."""
    cost = qty * pos.avg_px
    p = pos.qty - qty
    if abs(p) < 1e-12:
        p = 0.0
        pos.avg_px = 0.0
    pos.qty = p
    mark_to_market(run, ins, mkt, pos)
    return cost


@kernel
def _give_spot(run, ins, mkt, pos, qty, cost):
    """Return qty coins with their cost basis to the spot position of s."""
    if qty <= 0.0:
        return
    p = pos.qty
    pos.avg_px = (p * pos.avg_px + cost) / (p + qty)
    pos.qty = p + qty
    mark_to_market(run, ins, mkt, pos)


# ---------------------------------------------------------------------------------- SDK calls
@kernel
def _ring_full(acct, ring):
    return acct.n_loan_ring >= len(ring)


@kernel
def _ring(c, j, event, amount, px):
    k = c.acct.n_loan_ring
    c.loan_ring[k].loan = j
    c.loan_ring[k].event = event
    c.loan_ring[k].amount = amount
    c.loan_ring[k].price = px
    c.loan_ring[k].debt = c.loans[j].debt
    c.loan_ring[k].coll = c.loans[j].coll
    c.loan_ring[k].interest = c.loans[j].interest
    c.loans[j].interest = 0.0
    c.acct.n_loan_ring = k + 1


@kernel
def loan_open(c, sym, collateral_qty, borrow):
    """Pledge collateral_qty of the spot position of sym and borrow `borrow` USD.

    Returns the loan id (>= 1) or -reason: INSUFFICIENT_BALANCE (not enough coins),
    INSUFFICIENT_MARGIN (LTV above loans.max_open_ltv), TOO_MANY_OPEN_ORDERS (loan table full).
    """
    if sym < 0 or sym >= c.run.nsym or c.inst[sym].type != T_SPOT:
        return -R_UNKNOWN_SYMBOL
    if not (collateral_qty > 0.0) or not (borrow >= 0.0):
        return -R_INVALID_QTY
    if collateral_qty > c.pos[sym].qty + 1e-12:
        return -R_INSUFFICIENT_BALANCE
    px = val_px(c.run, c.mkt[sym])
    if not (px > 0.0) or borrow > c.run.loan_max_open_ltv * collateral_qty * px:
        return -R_INSUFFICIENT_MARGIN
    if c.acct.n_loans >= len(c.loans) or _ring_full(c.acct, c.loan_ring):
        return -R_TOO_MANY
    j = c.acct.n_loans
    c.acct.n_loans = j + 1
    disarm_guard(c)
    c.loans[j].active = 1
    c.loans[j].sym = sym
    c.loans[j].cost = _take_spot(c.run, c.inst[sym], c.mkt[sym], c.pos[sym], collateral_qty)
    c.loans[j].coll = collateral_qty
    c.loans[j].debt = borrow
    c.loans[j].ts = c.clock.now_ts
    c.loans[j].interest = 0.0
    c.loans[j].warn = 0
    c.pos[sym].loans_on += 1
    c.acct.balance += borrow
    c.acct.loan_cash_in += borrow
    _ring(c, j, EV_OPEN, borrow, px)
    return j + 1


@kernel
def _live(acct, loans, loan_id):
    j = loan_id - 1
    if j < 0 or j >= acct.n_loans or not loans[j].active:
        return -1
    return j


@kernel
def _begin(c, loan_id, amount):
    """Checks shared by the calls that change an open loan; accrues its interest to now.
    Returns the loan's slot, or -reason."""
    j = _live(c.acct, c.loans, loan_id)
    if j < 0:
        return -R_UNKNOWN_ORDER
    if not (amount > 0.0):
        return -R_INVALID_QTY
    if _ring_full(c.acct, c.loan_ring):
        return -R_TOO_MANY
    _accrue(c, j, c.clock.now_ts)
    return j


@kernel
def loan_borrow(c, loan_id, amount):
    """Borrow more on an open loan, up to loans.max_open_ltv. Returns 0 or -reason."""
    j = _begin(c, loan_id, amount)
    if j < 0:
        return j
    px = val_px(c.run, c.mkt[c.loans[j].sym])
    if c.loans[j].debt + amount > c.run.loan_max_open_ltv * c.loans[j].coll * px:
        return -R_INSUFFICIENT_MARGIN
    c.loans[j].debt += amount
    c.acct.balance += amount
    disarm_guard(c)
    c.acct.loan_cash_in += amount
    _ring(c, j, EV_BORROW, amount, px)
    return 0


@kernel
def loan_repay(c, loan_id, amount):
    """Repay up to `amount` USD from the balance; repaying all of it closes the loan and
    returns the collateral to the spot position. Returns 0 or -reason."""
    j = _begin(c, loan_id, amount)
    if j < 0:
        return j
    pay = min(amount, c.loans[j].debt)
    cash = c.acct.balance - iso_total(c)
    for s in range(c.run.nsym):  # cash not tied up in spot coins or isolated margin
        if c.inst[s].type == T_SPOT:
            cash -= c.pos[s].qty * c.pos[s].avg_px
    if pay > cash:
        return -R_INSUFFICIENT_BALANCE
    px = val_px(c.run, c.mkt[c.loans[j].sym])
    c.acct.balance -= pay
    c.acct.loan_cash_out += pay
    disarm_guard(c)
    c.loans[j].debt -= pay
    _ring(c, j, EV_REPAY, pay, px)
    if c.loans[j].debt <= 1e-9:
        _close(c, j)
        _ring(c, j, EV_CLOSED, 0.0, px)
    return 0


@kernel
def _close(c, j):
    s = c.loans[j].sym
    _give_spot(c.run, c.inst[s], c.mkt[s], c.pos[s], c.loans[j].coll, c.loans[j].cost)
    c.loans[j].coll = 0.0
    c.loans[j].cost = 0.0
    c.loans[j].debt = 0.0
    c.loans[j].active = 0
    c.pos[s].loans_on -= 1


@kernel
def loan_add_collateral(c, loan_id, qty):
    """Move qty more coins from the spot position into the loan's collateral. Returns 0 or -reason."""
    j = _live(c.acct, c.loans, loan_id)
    if j < 0:
        return -R_UNKNOWN_ORDER
    s = c.loans[j].sym
    if not (qty > 0.0):
        return -R_INVALID_QTY
    if qty > c.pos[s].qty + 1e-12:
        return -R_INSUFFICIENT_BALANCE
    if _ring_full(c.acct, c.loan_ring):
        return -R_TOO_MANY
    _accrue(c, j, c.clock.now_ts)
    c.loans[j].cost += _take_spot(c.run, c.inst[s], c.mkt[s], c.pos[s], qty)
    c.loans[j].coll += qty
    _ring(c, j, EV_ADD, qty, val_px(c.run, c.mkt[s]))
    return 0


@kernel
def loan_ltv(c, loan_id):
    """Current LTV of a loan (NaN if it is not open)."""
    j = _live(c.acct, c.loans, loan_id)
    if j < 0:
        return np.nan
    return _ltv(c.loans[j], val_px(c.run, c.mkt[c.loans[j].sym]))


@kernel
def loan_health(c, loan_id):
    """Health band of an open loan now: a LoanHealth value (GOOD, FAIR, DANGER); -1 if it is not
    open."""
    j = _live(c.acct, c.loans, loan_id)
    if j < 0:
        return -1
    return health_band(c.run, c.loans[j].debt, _ltv(c.loans[j], val_px(c.run, c.mkt[c.loans[j].sym])))


@kernel
def loan_debt(c, loan_id):
    """Debt of a loan in USD, accrued interest included (0 if it is not open)."""
    j = _live(c.acct, c.loans, loan_id)
    return c.loans[j].debt if j >= 0 else 0.0


@kernel
def loan_collateral(c, loan_id):
    """Coins pledged as the loan's collateral (0 if it is not open)."""
    j = _live(c.acct, c.loans, loan_id)
    return c.loans[j].coll if j >= 0 else 0.0


# ---------------------------------------------------------------------------------- the loop
@kernel
def flush_loan_ring(c, rows):
    for i in range(c.acct.n_loan_ring):
        k = c.acct.n_loan_rows
        j = c.loan_ring[i].loan
        px = c.loan_ring[i].price
        rows[k].ts_ns = c.clock.now_ts
        rows[k].loan_id = j + 1
        rows[k].sym = c.loans[j].sym
        rows[k].event = c.loan_ring[i].event
        rows[k].amount = c.loan_ring[i].amount
        rows[k].debt = c.loan_ring[i].debt
        rows[k].collateral_qty = c.loan_ring[i].coll
        rows[k].price = px
        v = c.loan_ring[i].coll * px
        rows[k].ltv = c.loan_ring[i].debt / v if v > 0.0 else np.inf
        rows[k].interest = c.loan_ring[i].interest
        rows[k].penalty = 0.0
        rows[k].seized_qty = 0.0
        rows[k].bad_debt = 0.0
        rows[k].health = health_band(c.run, rows[k].debt, rows[k].ltv)
        c.acct.n_loan_rows = k + 1
    c.acct.n_loan_ring = 0


@kernel
def check_loans(c, s, t, rows, liq_rows):
    """After a price event of s: accrue interest, fire warnings, liquidate loans at the LLTV."""
    px = val_px(c.run, c.mkt[s])
    if not (px > 0.0):
        return
    for j in range(c.acct.n_loans):
        if not c.loans[j].active or c.loans[j].sym != s:
            continue
        _accrue(c, j, t)
        ltv = _ltv(c.loans[j], px)
        if ltv >= c.run.loan_lltv:
            _liquidate_loan(c, j, t, px, rows, liq_rows)
        elif ltv >= c.run.loan_warning_ltv:
            if not c.loans[j].warn:
                c.loans[j].warn = 1
                c.acct.mc_pending = 1
                c.acct.mc_sym = s
                c.acct.mc_ratio = ltv / c.run.loan_lltv
                c.acct.n_margin_calls += 1
                _row(rows, c.acct.n_loan_rows, c, j, t, EV_CALL, 0.0, px, 0.0, 0.0, 0.0)
                c.acct.n_loan_rows += 1
        else:
            c.loans[j].warn = 0


@kernel
def _liquidate_loan(c, j, t, px, rows, liq_rows):
    s = c.loans[j].sym
    lif = c.run.loan_lif
    debt = c.loans[j].debt
    coll = c.loans[j].coll
    bankrupt_px = debt / coll  # where the collateral is worth exactly the debt
    repaid = debt
    if c.run.loan_partial:
        repaid = loan_repay_to_restore(debt, coll, px, lif, c.run.loan_max_open_ltv)
    seized = repaid * lif / px
    bad_debt = 0.0
    if seized > coll:
        # Morpho: all the collateral is seized and repays collateral * price / LIF; the rest of
        # the debt is bad debt, socialised to the lenders. The borrower is free of all of it.
        seized = coll
        repaid = coll * px / lif
        bad_debt = debt - repaid
    # the borrower's penalty: collateral value lost beyond the debt it is freed of
    penalty = seized * px - (repaid + bad_debt) if seized * px > repaid + bad_debt else 0.0
    avg_c = c.loans[j].cost / coll
    seized_cost = seized * avg_c
    c.acct.balance -= seized_cost
    c.acct.loan_seized_cost += seized_cost
    disarm_guard(c)
    c.loans[j].cost -= seized_cost
    c.loans[j].coll = coll - seized
    c.loans[j].debt = 0.0 if bad_debt > 0.0 else debt - repaid
    c.acct.loan_penalties += penalty
    c.acct.n_loan_liquidations += 1
    c.loans[j].warn = 0
    _row(rows, c.acct.n_loan_rows, c, j, t, EV_LIQ, repaid, px, penalty, seized, bad_debt)
    c.acct.n_loan_rows += 1
    freed = repaid + bad_debt  # the debt the borrower no longer owes
    write_liq_row(c.acct, liq_rows, t, s, -1, seized, px, bankrupt_px, freed / seized if seized > 0.0 else px, penalty, 0.0, freed - seized_cost)
    if c.loans[j].debt <= 1e-9:
        _close(c, j)
        _row(rows, c.acct.n_loan_rows, c, j, t, EV_CLOSED, 0.0, px, 0.0, 0.0, 0.0)
        c.acct.n_loan_rows += 1

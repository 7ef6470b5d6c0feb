"""Sanity checks of contract specs beyond the instruments file's syntax, for `data validate`.

(The engine-load checks planned for backtest/data/instruments.py were not in this branch yet;
validate calls `check_instrument` from here. Merge the two when both exist.)
"""
from __future__ import annotations

from .instruments import Instrument

FEE_LIMIT = 0.01  # |fee rate| above 1 % of notional is a typo (e.g. 0.05 meant as 0.05 %)


def check_instrument(ins: Instrument) -> list[str]:
    """Problems with one instrument (empty when it looks sane). Each is one line, naming the key."""
    out: list[str] = []
    w = f"instruments.{ins.symbol}"
    for k in ("maker_fee_rate", "taker_fee_rate"):
        v = getattr(ins, k)
        if not (-FEE_LIMIT < v < FEE_LIMIT):
            out.append(f"{w}.{k} = {v!r}: outside ±{FEE_LIMIT} (rates are fractions: 0.0005 is 0.05 %)")
    if ins.taker_fee_rate < ins.maker_fee_rate:
        out.append(f"{w}: taker_fee_rate {ins.taker_fee_rate!r} is below maker_fee_rate {ins.maker_fee_rate!r}")
    prev = None
    for j, b in enumerate(ins.brackets):
        where = f"{w}.brackets[{j}]"
        if not b.notional_cap > b.notional_floor:
            out.append(f"{where}: notional_cap {b.notional_cap!r} is not above notional_floor {b.notional_floor!r}")
        if not b.max_leverage >= 1:
            out.append(f"{where}.max_leverage = {b.max_leverage!r}: must be >= 1")
        if not 0 < b.mmr < 1:
            out.append(f"{where}.mmr = {b.mmr!r}: must be in (0, 1)")
        elif b.max_leverage >= 1 and b.mmr > 1 / b.max_leverage + 1e-12:
            out.append(f"{where}: mmr {b.mmr!r} exceeds the initial margin 1/max_leverage = {1 / b.max_leverage:.6g} "
                       "(a position would be liquidated on opening)")
        if prev is not None:
            if b.max_leverage > prev.max_leverage:
                out.append(f"{where}.max_leverage rises from {prev.max_leverage!r} to {b.max_leverage!r}")
            if b.mmr < prev.mmr:
                out.append(f"{where}.mmr falls from {prev.mmr!r} to {b.mmr!r}")
            # the maintenance margin N*mmr - amount is continuous at every tier boundary
            want = prev.maint_amount + b.notional_floor * (b.mmr - prev.mmr)
            if abs(b.maint_amount - want) > 1e-6 * max(1.0, abs(want)):
                out.append(f"{where}.maint_amount = {b.maint_amount!r}, expected {want:.6f} so that the "
                           "maintenance margin is continuous at notional_floor")
        elif b.maint_amount != 0 or b.notional_floor != 0:
            out.append(f"{where}: the first bracket must start at notional 0 with maint_amount 0")
        prev = b
    return out


def instrument_warnings(ins: Instrument) -> list[str]:
    """Legal but probably unintended specs."""
    if ins.is_perpetual and not ins.brackets:
        return [f"instruments.{ins.symbol}: a perpetual without leverage brackets "
                "(the engine's defaults apply; pass --venue on import for the venue's tiers)"]
    return []

"""Pack a run: check the config against the instruments and the data, and write both into a new
run state (core/state.py) as numbers, for the compiled loop. engine.py and batch.py start every
run (or parameter set) from `pack`.
"""
from __future__ import annotations

import numpy as np

from .config import QUOTE_MODELS, RunConfig, leverage_by_symbol
from .core.enums import from_name
from .core.margin_math import morpho_lif
from .core.schema import InstrumentType, MarginMode, SlippageModel
from .core.state import State, new_state
from .data.instruments import Instrument
from .errors import ConfigError, shown
from .plugins.codegen import LoopFeatures, names_in_sources

NEVER = np.iinfo(np.int64).max
# one number a run: the kernel's Python function (the same IEEE result), not a compile on the
# path of a cold start
_morpho_lif = getattr(morpho_lif, "py_func", morpho_lif)


def pack(cls, stream, cfg: RunConfig) -> State:
    """A run's state (core/state.py) for this strategy, stream and config: settings and
    instruments (pack_settings), the L2 book flag when the stream replays a book, the
    strategy's own timer when the config sets none, and the kernels' variant (`rare`). A batch
    copies it for each of its sets."""
    c = new_state(len(stream.symbols))
    pack_settings(c, stream.symbols, stream.instruments, cfg)
    if any(k == "book" for k, _ in stream.files):
        c.run.book_replayed = 1  # trades also update the L2 book (R9.2)
    if c.run.timer_interval_ns == 0:  # the run sets no timer: the strategy's own, if any
        c.run.timer_interval_ns = cls.timer_ns()
    return with_variant(cls, c)


def with_variant(cls, c: State) -> State:
    """The packed state, without the kernels' rare paths when the run cannot reach them."""
    return c if rare_paths_needed(cls, c) else c._replace(rare=None)


def _opens_loans(cls) -> bool:
    return names_in_sources(cls, ("loan_open",))  # engine.check_loans_allowed catches any other way


def rare_paths_needed(cls, c: State) -> bool:
    """Can this run reach the kernels' rare paths (core/rare.py)? Inverse and spot instruments
    (coin wallets, spot margin shorts), isolated margin, partial liquidation, an L2 book (its
    walk, its depth, the queue behind it), the queue model, and loans (last: it reads sources)."""
    n = c.run.nsym
    kinds = c.inst.type[:n]
    return bool(np.isin(kinds, (int(InstrumentType.INVERSE_PERPETUAL), int(InstrumentType.SPOT))).any()
                or (c.inst.margin_mode[:n] == int(MarginMode.ISOLATED)).any() or c.run.liq_partial
                or c.run.book_replayed or c.run.queue_model or _opens_loans(cls))


def loop_features(cls, c: State) -> LoopFeatures:
    """The loop's optional steps this run needs, from its packed state: the L2 book when the
    stream replays one, the estimators when an impact model uses them, loans when the
    strategy's sources name `loan_open` (never in a lean state: pack() looked), and the
    kernels' rare paths as pack() chose them."""
    rare = c.rare is not None
    return LoopFeatures(book=bool(c.run.book_replayed), estimators=bool(c.run.need_estimators),
                        loans=rare and _opens_loans(cls), rare=rare)


def pack_settings(c: State, symbols: list[str], instruments: dict[str, Instrument], cfg: RunConfig) -> None:
    """Check the config against the run's instruments and write both into the state's `run`,
    `inst` (and the starting `acct`, `clock`, `pos`) parts, as numbers."""
    c.run.nsym = len(symbols)
    c.run.initial_balance = c.acct.balance = c.acct.peak_equity = float(cfg.initial_balance)
    x = cfg.execution
    c.run.latency_ns = x.latency_ns
    c.run.cancel_latency_ns = x.cancel_latency_ns
    c.run.feed_latency_ns = x.feed_latency_ns
    c.run.latency_jitter_ns = x.latency_jitter_ns
    c.clock.rng_state = int(cfg.seed) % 2147483646 + 1
    c.run.touch_fills = x.touch_fills
    c.run.partial_fills = x.partial_fills
    c.run.queue_model = x.queue_model
    c.run.book_half_life_ns = x.book_resilience_half_life * 1e9
    c.run.book_beyond_frac = x.book_beyond_bps / 10000.0
    c.run.impact_horizon_ns = float(x.impact_horizon_ns)
    c.run.initial_volume_30d = x.initial_volume_30d
    c.run.n_fee_tiers = len(x.fee_tiers)
    for k, tier in enumerate(x.fee_tiers):
        c.run.ft_volume[k] = tier["volume_30d"]
        c.run.ft_maker[k] = tier["maker_fee_rate"]
        c.run.ft_taker[k] = tier["taker_fee_rate"]
    unknown = set(x.models) - set(symbols)
    if unknown:
        raise ConfigError(f"execution.models: symbol(s) {sorted(unknown)} not in this run")
    c.run.sample_interval_ns = cfg.sample_interval_ns
    c.run.timer_interval_ns = cfg.timer_ns
    c.clock.next_sample_ts = NEVER
    c.clock.next_timer_ts = NEVER
    c.clock.next_funding_ts = NEVER
    m = cfg.margin
    c.run.liq_use_last = m.trigger == "last"
    c.run.liq_settle_market = m.settle == "market"
    c.run.liq_cancel_orders = m.cancel_orders
    c.run.liq_partial = m.partial
    c.run.liq_fee_rate = m.liquidation_fee_rate
    c.run.margin_call_level = m.margin_call_ratio
    c.run.guard_on = m.price_guard
    c.acct.insurance_fund = m.insurance_fund
    c.run.spot_margin = m.spot_margin
    c.run.borrow_rate_hourly = m.borrow_rate_hourly
    c.run.spot_maint_level = m.spot_margin_maintenance
    ln = cfg.loans
    c.run.loan_lltv = ln.lltv
    c.run.loan_warning_ltv = ln.warning_ltv
    c.run.loan_max_open_ltv = ln.max_open_ltv
    c.run.loan_apr = ln.apr
    c.run.loan_lif = _morpho_lif(ln.lltv) if ln.penalty is None else 1.0 + ln.penalty
    c.run.loan_partial = ln.partial
    if m.funding != "data":
        c.run.const_funding_rate = float(m.funding)
        hours = min((instruments[s].funding_interval_h for s in symbols if instruments[s].is_perpetual),
                    default=8.0)
        c.run.funding_interval_ns = int(hours * 3_600_000_000_000)
    unknown_modes = set(m.modes) - set(symbols)
    if unknown_modes:
        raise ConfigError(f"margin.modes: symbol(s) {sorted(unknown_modes)} not in this run")
    leverage = leverage_by_symbol(cfg.leverage, {s: instruments[s] for s in symbols})
    if cfg.benchmark and cfg.benchmark not in symbols:
        raise ConfigError(f"benchmark: symbol {shown(cfg.benchmark)} not in this run ({', '.join(symbols)})")
    for sym, amount in cfg.coin_balances.items():
        if sym not in symbols or instruments[sym].kind != InstrumentType.INVERSE_PERPETUAL:
            raise ConfigError(f"coin_balances.{sym}: not an inverse perpetual of this run")
    for i, sym in enumerate(symbols):
        ins = instruments[sym]
        c.inst[i].type = int(ins.kind)
        c.inst[i].contract_size = ins.contract_size
        c.inst[i].tick = ins.tick_size
        c.inst[i].lot = ins.lot_size
        c.inst[i].maker_fee = ins.maker_fee_rate
        c.inst[i].taker_fee = ins.taker_fee_rate
        c.inst[i].n_brackets = len(ins.brackets)
        for j, b in enumerate(ins.brackets):
            c.inst[i].br_floor[j] = b.notional_floor
            c.inst[i].br_cap[j] = b.notional_cap
            c.inst[i].br_max_lev[j] = b.max_leverage
            c.inst[i].br_mmr[j] = b.mmr
            c.inst[i].br_maint_amount[j] = b.maint_amount
        lev = leverage[sym]
        if ins.kind == InstrumentType.SPOT and lev != 1.0 and not m.spot_margin:
            raise ConfigError(f"leverage.{sym}: spot trades at 1x unless margin.spot_margin = true "
                              "(then it sets the leverage of short sales)")
        model = from_name(SlippageModel, x.model_of(sym))
        c.inst[i].slip_model = int(model)
        c.inst[i].slip_bps = x.slippage_bps
        c.inst[i].impact_k = x.impact_k
        if model.needs_estimators:
            c.run.need_estimators = 1
        c.inst[i].leverage = lev
        c.inst[i].margin_mode = int(from_name(MarginMode, m.modes.get(sym, m.mode)))
        if ins.kind == InstrumentType.INVERSE_PERPETUAL:
            c.run.n_inverse += 1
            c.pos[i].coin_bal = float(cfg.coin_balances.get(sym, 0.0))
        if ins.brackets and lev > ins.brackets[0].max_leverage:
            raise ConfigError(f"leverage.{sym}: {lev:g}x is above the instrument's maximum "
                              f"{ins.brackets[0].max_leverage:g}x")


def check_quote_needs(cfg: RunConfig, stream) -> None:
    """Quote-based execution models need quotes in the data: say so before the run starts."""
    x = cfg.execution
    for sym in stream.symbols:
        if ("quotes", sym) in stream.files:
            continue
        if x.model_of(sym) in QUOTE_MODELS:
            raise ConfigError(f"execution: model '{x.model_of(sym)}' for {sym} needs quote data, "
                              f"and the dataset has none for it (use 'spread' or 'sqrt_impact')")
        if x.queue_model:
            raise ConfigError(f"execution.queue_model needs quote data, and the dataset has none "
                              f"for {sym}")

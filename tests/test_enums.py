"""One home per enum (core/enums.py): the kernels' int aliases, the order-type traits, the config
and CLI choices are all derived from it, and the oracle's independent tables agree with it."""
import ast
import inspect
import os
import sys

import numpy as np

from backtest import config
from backtest.core import codes, enums
from backtest.core.enums import OrderType, SlippageModel, TriggerKind

sys.path.insert(0, os.path.dirname(__file__))
import oracle  # noqa: E402


def test_trait_masks_match_the_declared_table():
    # the kernel accessors read folded bit masks; their plain-Python bodies must give the table
    for t in OrderType:
        x = np.int8(t)  # o_type is int8 in the context record
        assert codes.ot_market_like.py_func(x) == enums.is_market_like(t), t
        assert codes.ot_needs_limit.py_func(x) == enums.needs_limit(t), t
        assert codes.ot_trigger_kind.py_func(x) == int(enums.trigger_kind(t)), t


def test_oracle_traits_written_independently_agree():
    def ints(trait):
        return set(int(t) for t in enums.types_where(trait))

    assert set(oracle.MARKET_LIKE) == ints(enums.is_market_like)
    assert set(oracle.HAS_LIMIT) == ints(enums.needs_limit)
    assert set(oracle.STOP_LIKE) == ints(enums.is_stop_like)
    assert set(oracle.HAS_STOP) == ints(enums.needs_stop)
    assert set(oracle.TP_TYPES) == {int(t) for t in OrderType
                                    if enums.trigger_kind(t) is TriggerKind.TAKE_PROFIT}


def test_slippage_models_have_one_spelling():
    assert config.SLIPPAGE_MODELS == ("none", "spread", "fixed_bps", "sqrt_impact", "l1_depth",
                                      "l2_depth")
    assert [enums.from_name(SlippageModel, n) for n in config.SLIPPAGE_MODELS] == list(SlippageModel)
    assert config.QUOTE_MODELS == ("l1_depth",)
    from backtest.core import execution

    assert (execution.M_NONE, execution.M_SPREAD, execution.M_SQRT_IMPACT) == (0, 1, 3)


def test_cli_choices_come_from_the_enum():
    from backtest.cli import cli

    run = cli.commands["run"]
    opt = next(p for p in run.params if p.name == "slippage")
    assert tuple(opt.type.choices) == config.SLIPPAGE_MODELS
    opt = next(p for p in run.params if p.name == "margin_mode")
    assert tuple(opt.type.choices) == config.MARGIN_MODES == ("cross", "isolated")


def test_codes_has_no_hand_written_numbers():
    # every alias is int(Enum.MEMBER) or derived; a literal number would be a second home
    tree = ast.parse(inspect.getsource(codes))
    for node in tree.body:
        if isinstance(node, ast.Assign):
            consts = [n for n in ast.walk(node.value) if isinstance(n, ast.Constant)
                      and isinstance(n.value, int) and not isinstance(n.value, bool)]
            bad = [c.value for c in consts if c.value not in (1, 2)]  # 1 << t, 2 bits per kind
            assert not bad, ast.unparse(node)


def test_result_tables_carry_readable_enum_columns(tmp_path):
    import polars as pl

    from backtest.core.enums import OrderStatus, Reason
    from backtest.result import Result

    orders = pl.DataFrame({
        "oid": [1, 2], "order_type": pl.Series([int(OrderType.MARKET), int(OrderType.TRAILING_STOP)],
                                               dtype=pl.Int8),
        "status": pl.Series([int(OrderStatus.FILLED), int(OrderStatus.REJECTED)], dtype=pl.Int8),
        "reason": pl.Series([int(Reason.NONE), int(Reason.INSUFFICIENT_MARGIN)], dtype=pl.Int16)})
    res = Result(manifest={}, tables={"orders": orders})
    o = res.orders
    assert o.columns == ["oid", "order_type", "order_type_name", "status", "status_name", "reason",
                         "reason_name"]
    assert o["order_type_name"].to_list() == ["market", "trailing_stop"]
    assert o.filter(pl.col("status_name") == "rejected")["reason_name"].to_list() == ["insufficient_margin"]
    assert o.schema["reason_name"] == pl.Enum(list(enums.names_of(Reason)))
    back = Result.load(res.save(tmp_path / "run"))  # the Enum survives Parquet, and nothing is added twice
    assert back.orders.equals(o) and back.orders.schema == o.schema


def test_enum_names_match_polars_replace_strict_for_unknown_null_and_many_codes():
    """with_enum_names builds the names from the codes with numpy and an Arrow dictionary (a
    polars expression costs 0.4 ms on every small table); it must give exactly what polars'
    own mapping gives: null for a code no member has and for a null code, at any size."""
    import numpy as np
    import polars as pl

    from backtest.core.enums import OrderStatus, Reason
    from backtest.result import enum_dtype, with_enum_names

    rng = np.random.default_rng(7)
    codes = [int(m) for m in Reason]
    for n in (0, 5, 100_000):
        reason = rng.choice(codes + [-3, max(codes) + 1, 999], n).astype(np.int16)
        status = pl.Series("status", rng.choice([int(m) for m in OrderStatus] + [-1], n), dtype=pl.Int8)
        df = pl.DataFrame({"reason": reason, "status": status})
        if n:
            df = df.with_columns(pl.when(pl.int_range(n) % 7 == 3).then(None).otherwise(pl.col("status"))
                                 .alias("status"))
        got = with_enum_names(df)
        for col, enum in (("reason", Reason), ("status", OrderStatus)):
            want = df[col].replace_strict({int(m): m.name.lower() for m in enum}, default=None,
                                          return_dtype=enum_dtype(enum))
            assert got[f"{col}_name"].equals(want.alias(f"{col}_name"), check_dtypes=True)
        assert got.columns == ["reason", "reason_name", "status", "status_name"]
        assert with_enum_names(got) is got  # idempotent

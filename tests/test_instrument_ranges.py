"""Issue #14.13: every field of an instruments file is range-checked when it is loaded, with one
line naming the file, symbol, field, value and allowed range (backtest.data.instruments)."""
import json

import pytest

from backtest.data.generate import instruments as generated_instruments
from backtest.data.instruments import instrument_problems, load_instruments, validate_instrument
from backtest.errors import DataError

# Binance USDⓈ-M BTCUSDT, first tiers (maint_amount continuous: 600,000 * (0.0065 - 0.005) + 50 = 950)
BRACKETS = [dict(notional_floor=0, notional_cap=50_000, max_leverage=125, mmr=0.004, maint_amount=0),
            dict(notional_floor=50_000, notional_cap=600_000, max_leverage=100, mmr=0.005, maint_amount=50),
            dict(notional_floor=600_000, notional_cap=3_000_000, max_leverage=75, mmr=0.0065,
                 maint_amount=950)]


def spec(**over):
    s = dict(type="linear_perpetual", base="BTC", quote="USDT", settle="USDT", tick_size=0.1,
             lot_size=0.001, contract_size=1.0, maker_fee_rate=0.0002, taker_fee_rate=0.0005,
             funding_interval_h=8, brackets=[dict(b) for b in BRACKETS])
    s.update(over)
    return s


def write(tmp_path, s):
    p = tmp_path / "instruments.json"
    p.write_text(json.dumps({"version": 1, "instruments": {"BTCUSDT": s}}))
    return p


def bracket_field(j, key, value):
    s = spec()
    s["brackets"][j][key] = value
    return s


CASES = [
    (spec(taker_fee_rate=-0.5), "taker_fee_rate = -0.5", "[0, 0.01]"),  # the reported case
    (spec(taker_fee_rate=0.02), "taker_fee_rate = 0.02", "[0, 0.01]"),
    (spec(maker_fee_rate=-0.02), "maker_fee_rate = -0.02", "[-0.01, 0.01]"),
    (spec(maker_fee_rate=float("nan")), "maker_fee_rate = nan", "[-0.01, 0.01]"),
    (spec(tick_size=0), "tick_size = 0.0", "(0, inf)"),
    (spec(lot_size=-0.001), "lot_size = -0.001", "(0, inf)"),
    (spec(contract_size=float("inf")), "contract_size = inf", "(0, inf)"),
    (spec(funding_interval_h=0), "funding_interval_h = 0.0", "(0, 168]"),
    (bracket_field(0, "mmr", float("nan")), "brackets[0].mmr = nan", "finite"),
    (bracket_field(0, "mmr", -0.5), "brackets[0].mmr = -0.5", "(0, 1)"),
    (bracket_field(1, "mmr", 0.003), "brackets[1].mmr = 0.003", "[0.004, 1)"),
    (bracket_field(0, "max_leverage", 1e300), "brackets[0].max_leverage = 1e+300", "[1, 200]"),
    (bracket_field(0, "max_leverage", 0.5), "brackets[0].max_leverage = 0.5", "[1, 200]"),
    (bracket_field(1, "max_leverage", 150), "brackets[1].max_leverage = 150.0", "[1, 125]"),
    (bracket_field(0, "notional_floor", 10), "brackets[0].notional_floor = 10.0", "allowed: 0"),
    (bracket_field(1, "notional_floor", 40_000), "brackets[1].notional_floor = 40000.0", "previous notional_cap"),
    (bracket_field(2, "notional_cap", 600_000), "brackets[2].notional_cap = 600000.0", "> notional_floor"),
    (bracket_field(0, "maint_amount", 5), "brackets[0].maint_amount = 5.0", "allowed: 0 "),
    # 600,000 * (0.0065 - 0.005) + 50 = 950, not 900: the maintenance margin would jump by 50
    (bracket_field(2, "maint_amount", 900), "brackets[2].maint_amount = 900.0", "allowed: 950 "),
]


@pytest.mark.parametrize("s, field_value, allowed", CASES, ids=[c[1] for c in CASES])
def test_out_of_range_field_is_one_line_naming_file_symbol_field_value_range(tmp_path, s, field_value,
                                                                             allowed):
    p = write(tmp_path, s)
    with pytest.raises(DataError) as e:
        load_instruments(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(p))
    assert f"instruments.BTCUSDT.{field_value} is out of range" in msg
    assert allowed in msg


def test_valid_specs_load(tmp_path):
    inst = load_instruments(write(tmp_path, spec(maker_fee_rate=-0.0001)))["BTCUSDT"]
    assert inst.brackets[2].maint_amount == 950.0
    for i in generated_instruments().values():  # cum rounded to 6 decimals by the generator
        validate_instrument(i)


def test_non_numbers_in_brackets_are_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"brackets\[0\]\.mmr must be a number"):
        load_instruments(write(tmp_path, bracket_field(0, "mmr", "0.4%")))


def test_instrument_problems_lists_every_field():
    from backtest.data.instruments import Bracket, Instrument
    bad = Instrument("X", "linear_perpetual", "X", "USDT", "USDT", 0.1, 0.001, taker_fee_rate=-0.5,
                     brackets=(Bracket(0, 1e6, 1e300, float("nan"), 0.0),))
    assert [p[0] for p in instrument_problems(bad)] == [
        "taker_fee_rate", "taker_fee_rate", "brackets[0].mmr", "brackets[0].max_leverage", "brackets[0].mmr"]


def test_swapped_fees_are_a_problem():
    from backtest.data.instruments import Bracket, Instrument
    bad = Instrument("X", "linear_perpetual", "X", "USDT", "USDT", 0.1, 0.001, maker_fee_rate=0.0005,
                     taker_fee_rate=0.0002, brackets=(Bracket(0, 1e6, 125.0, 0.004, 0.0),))
    assert [p[0] for p in instrument_problems(bad)] == ["taker_fee_rate"]

"""The bundled instrument catalogue: dated contract specs per venue, so that an import needs no
hand-written instruments file (`backtest data import --venue binance-usdm ...`).

One JSON file per venue in this folder: ``{"venue", "as_of", "sources", "approximations",
"instruments": {SYMBOL: {<instruments-file keys>, "source", "approximate": [keys]}}}``.
``source`` and ``approximate`` record where each value comes from and which are approximations;
they are dropped when an entry is copied into a dataset's instruments file.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from ...errors import ConfigError, DataError

HERE = Path(__file__).parent
META_KEYS = ("source", "approximate")


def venues() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.json"))


@cache
def load_venue(venue: str) -> dict:
    path = HERE / f"{venue}.json"
    if not path.is_file():
        raise ConfigError(f"unknown venue {venue!r}; the catalogue has {', '.join(venues())}")
    return json.loads(path.read_text())


def catalogue_instrument(venue: str, symbol: str):
    """The catalogue's Instrument for `symbol` on `venue` (checked like an instruments file)."""
    from ..instruments import _parse_one

    table = load_venue(venue)
    spec = table["instruments"].get(symbol)
    if spec is None:
        raise DataError(f"symbol {symbol!r} is not in the {venue} catalogue (as of {table['as_of']})",
                        file=HERE / f"{venue}.json",
                        fix=f"pass --instruments FILE, or use one of {', '.join(sorted(table['instruments']))}")
    spec = {k: v for k, v in spec.items() if k not in META_KEYS}
    return _parse_one(HERE / f"{venue}.json", symbol, spec)


__all__ = ["catalogue_instrument", "load_venue", "venues"]

"""`backtest data ...` commands (generate, import, validate, inspect)."""
from __future__ import annotations

import click


@click.group()
def data():
    """Create, import, validate and inspect tick datasets."""


def register(cli):
    cli.add_command(data)

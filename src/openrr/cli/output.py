"""Printing for the CLI: JSON for scripts, rich tables for people, errors on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# soft_wrap: long lines (paths, keys) stay whole so they can be copied from the terminal. emoji off:
# "HOST:1234:" in a message must not turn into an emoji code.
console = Console(soft_wrap=True, emoji=False)
err_console = Console(stderr=True, soft_wrap=True, emoji=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def fail(message: str, *, code: int = 1) -> NoReturn:
    # Escaped: a message is plain text, and one like "pip install 'openrr[ray]'" must keep its brackets.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(code)

"""The terminal table: one row per model (target, gold, each method), one column per metric."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def fmt(value: float | None, key: str) -> str:
    if value is None:
        return "n/a"
    if key.endswith("quality"):  # a p-value: small ones need scientific notation
        return f"{value:.2g}" if value >= 0.01 else f"{value:.1e}"
    return f"{value:.3f}"


def print_table(report: dict, console: Console) -> None:
    from obliviate.evals import METRIC_COLUMNS

    table = Table(caption="↑ higher is better  ↓ lower is better  ≈ closer to gold is better")
    table.add_column("model", no_wrap=True)
    arrow = {True: "↑", False: "↓", None: "≈"}
    for key, header, better in METRIC_COLUMNS:
        table.add_column(f"{header.replace(' ', chr(10))} {arrow[better]}", justify="right", no_wrap=True)
    for name, row in report["models"].items():
        table.add_row(name, *(fmt(row.get(key), key) for key, _, _ in METRIC_COLUMNS))
    console.print(table)

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


def deciding_text(v: dict) -> str:
    """One line of evidence: the deciding test's recovery against gold's, or why nothing decided."""
    name = v["deciding"]
    e = v["evidence"].get(name) if name else None
    if e is None:
        return name or "no test above gold"
    return (f"{name}: {e['candidate']:.2f} vs gold {e['gold']:.2f} "
            f"(difference {e['difference']:+.2f}, lower bound {e['ci_low']:+.2f})")


def print_verdicts(verdicts: dict, console: Console) -> None:
    table = Table(caption="removed: no test above gold · suppressed: plain forget at gold level, an attack above "
                  "gold · not forgotten: plain forget above gold")
    for col in ("model", "verdict", "deciding evidence", "tests above gold", "control"):
        table.add_column(col)
    for name, v in verdicts.items():
        control = "" if not v.get("control") else f"expected {v['expected']}: {'ok' if v['as_expected'] else 'WRONG'}"
        table.add_row(name, v["verdict"], deciding_text(v), ", ".join(v["above_gold"]) or "—", control)
    console.print(table)

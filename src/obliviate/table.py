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
    """One line of evidence: the deciding test against the reference, or why nothing decided."""
    name, ref = v["deciding"], v.get("reference", "gold")
    e = v["evidence"].get(name) if name else None
    if e is None:
        return name or f"every test within its margin of the {ref}"
    if v["verdict"] == "inconclusive":
        need = f"; about {e['subjects_needed']} forget subjects would decide it" if e.get("subjects_needed") else ""
        return (f"{name}: {e['candidate']:.2f} vs {ref} {e['reference']:.2f}, upper bound {e['upper']:+.2f} "
                f"not below the margin {e['margin']:.2f}{need}")
    return (f"{name}: {e['candidate']:.2f} vs {ref} {e['reference']:.2f} "
            f"(difference {e['difference']:+.2f}, lower bound {e['family_lower']:+.2f})")


def print_verdicts(verdicts: dict, console: Console) -> None:
    table = Table(caption="removed: every test within its margin of the reference · suppressed: plain forget "
                  "within it, an attack above · not forgotten: plain forget above · inconclusive: too little evidence")
    for col in ("model", "verdict", "deciding evidence", "tests above reference", "control"):
        table.add_column(col)
    for name, v in verdicts.items():
        control = "" if not v.get("control") else f"expected {v['expected']}: {'ok' if v['as_expected'] else 'WRONG'}"
        table.add_row(name, v["verdict"], deciding_text(v), ", ".join(v["above"]) or "—", control)
    console.print(table)

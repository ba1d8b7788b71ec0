"""evidence.json and evidence.html: what was asked, what was done, and every test's bound, before and after.

The page is self-contained (CSS inline, the plot a base64 PNG): it can be attached to a ticket or
handed to an auditor as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from obliviate.evals.report import CSS, _esc
from obliviate.evals.report_verdict import COLOURS, _recovery_bars
from obliviate.table import deciding_text


def _test_rows(v: dict) -> str:
    rows = []
    for name, e in v["evidence"].items():
        state = "above" if e["above"] else "within margin" if e["equivalent"] else "undecided"
        rows.append(f"<tr><td>{_esc(name)}</td><td>{e['candidate']:.3f}</td><td>{e['reference']:.3f}</td>"
                    f"<td>{e['difference']:+.3f}</td><td>[{e['lower']:+.3f}, {e['upper']:+.3f}]</td>"
                    f"<td>{'±' if e['two_sided'] else '&lt;'} {e['margin']:.2f}</td><td>{e['subjects']}</td>"
                    f"<td class=\"left\">{state}</td></tr>")
    skipped = "".join(f"<li><b>{_esc(k)}</b>: {_esc(r)}</li>" for k, r in v["skipped"].items())
    return ('<div class="scroll"><table><tr><th>test</th><th>model</th><th>reference</th><th>difference</th>'
            '<th>bounds (1 − α each)</th><th>margin</th><th>subjects</th><th class="left">state</th></tr>'
            + "\n".join(rows) + "</table></div>" + (f"<p class=\"note\">Not run:</p><ul class=\"note\">{skipped}</ul>"
                                                     if skipped else ""))


def render_evidence(ev: dict) -> str:
    stages = {k: ev[k] for k in ("before", "after") if k in ev}
    parts = [f"<h1>Forget request: {_esc(ev['verdict'])}</h1>",
             f'<p class="meta">request <code>{_esc(ev["request"])}</code> · kind {_esc(ev["kind"])} · model '
             f'<code>{_esc(ev["model"])}</code>' + (f" · method <code>{_esc(ev['method'])}</code>" if "method" in ev else "")
             + f" · {ev['created']} · sizes {_esc(ev['sizes'])}</p>",
             '<p class="note">Every test compares the model on the forget records with the same model on reference '
             "records it never saw (or with chance for knowledge probes). <i>removed</i> needs every test's upper "
             "bound of (model − reference) below its margin; <i>above</i> a lower bound above 0 after Bonferroni "
             "over the tests; <i>inconclusive</i> states how many forget subjects would decide it.</p>"]
    for stage, v in stages.items():
        colour = COLOURS.get(v["verdict"], "#000")
        parts.append(f'<h2>{stage}: <span style="color:{colour}">{_esc(v["verdict"])}</span></h2>'
                     f"<p>{_esc(deciding_text(v))}</p>" + _test_rows(v))
    if stages:
        parts.append(_recovery_bars(stages))
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>obliviate evidence</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")


def write_evidence(ev: dict, directory: Path) -> None:
    """evidence.json and evidence.html into `directory` (already a temporary directory: no atomic rename here)."""
    directory = Path(directory)
    (directory / "evidence.json").write_text(json.dumps(ev, indent=1, default=float) + "\n")
    (directory / "evidence.html").write_text(render_evidence(ev))

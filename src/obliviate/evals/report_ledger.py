"""The report card's "Forget requests through the ledger" section: retain, world and forget recall
against the number of requests served (`benchmarks/ledger_sustainability.py`), with each job's
model version and outcomes.

`attach(run_directory, result)` adds a result to RUN_DIR/report.json; `ledger_section(report)`
renders it (empty when the report has none).
"""

from __future__ import annotations

import json
from pathlib import Path

from obliviate.evals.report import _esc, _figure, _img
from obliviate.io import atomic_write_text

KEY = "ledger_sustainability"


def attach(run_directory: Path, result: dict) -> dict | None:
    """Add `result` (the benchmark's JSON, less its config and environment) to the run's report.json."""
    path = Path(run_directory) / "report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    report[KEY] = {k: v for k, v in result.items() if k not in ("config", "environment")}
    atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    return report


def curve(result: dict) -> str:
    points = result["points"]
    xs = [p["served"] for p in points]
    fig = _figure(7.0, 3.4)
    ax = fig.add_subplot()
    ax.plot(xs, [p["retain_acc"] for p in points], "o-", label="retain accuracy")
    ax.plot(xs, [p["world_acc"] for p in points], "s-", label="world accuracy")
    served = [p for p in points if p["forget_recall_served"] is not None]
    ax.plot([p["served"] for p in served], [p["forget_recall_served"] for p in served], "^--",
            label="forget recall (everyone served so far)")
    ax.set_xlabel("requests served")
    ax.set_ylabel("greedy recall")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{result['requests']} single-person requests, batches of {result['batch_size']}, {result['method']}")
    ax.legend(loc="best")
    return _img(fig, "retain, world and forget recall against requests served")


def ledger_section(report: dict) -> str:
    result = report.get(KEY)
    if not result or not result.get("points"):
        return ""
    rows = "".join(f"<tr><td>{p['served']}</td><td>v{p['model_version']}</td>"
                   f"<td class=\"left\">{_esc(', '.join(f'{k} {v}' for k, v in p['outcomes'].items()) or '—')}</td>"
                   f"<td>{'—' if p['forget_recall_served'] is None else p['forget_recall_served']}</td>"
                   f"<td>{p['retain_acc']}</td><td>{p['world_acc']}</td></tr>" for p in result["points"])
    t, lat, load = result["throughput"], result["latency"], result["load_average"]
    removed = lat["to_removed_s"]
    to_removed = (f"median {removed['median']} s, max {removed['max']} s ({removed['n']} removed)" if removed["n"]
                  else "none removed")
    return (f'<section id="ledger"><h2>Forget requests through the ledger</h2>'
            f'<p>Requests arrive in order and the worker takes them {result["batch_size"]} at a time, each job '
            f'unlearning from the version the previous one left. Throughput {t["requests_per_hour"]} requests '
            f'per hour of worker time on {t["threads"]} threads; submission to suppressed: max '
            f'{lat["to_suppressed_s"]["max"]} s; submission to removed: {to_removed}. Load average '
            f'{load["before"][0]:.1f} before, {load["after"][0]:.1f} after, on {load["cores"]} cores.</p>'
            + curve(result)
            + '<table><tr><th>served</th><th>version</th><th class="left">outcomes</th><th>forget recall</th>'
            f'<th>retain</th><th>world</th></tr>{rows}</table></section>')

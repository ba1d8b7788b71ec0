"""report.html: one self-contained page that reads a report.json for a person.

    from obliviate.evals.report import write_html
    write_html(json.loads(Path("runs/tiny/report.json").read_text()), Path("runs/tiny/report.html"))
    # or: obliviate report runs/tiny

Sections, each omitted when its part of the report is missing: header (run, seed, commit,
versions), summary table with a one-sentence reading per method, a bar chart per metric,
scalability and sustainability curves, the sweep's Pareto plot, and a glossary. Plots are PNGs
drawn by matplotlib (Agg) and embedded as base64; CSS is inline; the page requests nothing.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from pathlib import Path

from obliviate.errors import ObliviateError
from obliviate.io import atomic_write_text
from obliviate.table import fmt

REFERENCES = ("target", "gold")
ARROW = {True: "↑", False: "↓", None: "≈"}
DIRECTION = {True: "↑ higher is better", False: "↓ lower is better", None: "≈ closer to gold"}
CURVE_METRICS = ("forget_acc", "retain_acc", "world_acc", "forget_quality", "priv_leak")
QUALITY_THRESHOLD = 0.05  # KS p-value at or above which a model is indistinguishable from gold
LOG_FLOOR = 1e-20  # p-values below this are drawn at it (log axes cannot show 0)
DPI = 110

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0 auto;
       max-width: 1320px; padding: 24px 32px; color: #1d2330; line-height: 1.45; }
h1 { margin: 0 0 4px; font-size: 1.7em; } h2 { margin-top: 2em; border-bottom: 2px solid #e3e6ec; padding-bottom: 4px; }
.meta { color: #4a5366; font-size: 0.92em; } .meta code { background: #f2f4f7; padding: 1px 4px; border-radius: 3px; }
table { border-collapse: collapse; font-size: 0.92em; margin: 8px 0; }
.scroll { overflow-x: auto; }  /* many metric columns: the table scrolls instead of spilling out */
th, td { padding: 5px 10px; border-bottom: 1px solid #e3e6ec; text-align: right; white-space: nowrap; }
th { background: #f5f6f9; } th:first-child, td:first-child { text-align: left; }
tr.ref td { color: #5b6475; font-style: italic; }
td.na { color: #9a3b3b; cursor: help; } td.left, th.left { text-align: left; white-space: normal; }
td.gen { text-align: left; white-space: normal; overflow-wrap: anywhere; min-width: 8em; }  /* junk answers have no spaces */
.readings li { margin: 4px 0; } .readings b { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
.note { color: #5b6475; font-size: 0.88em; } .num { white-space: nowrap; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
.grid figure, figure.wide { margin: 0; } img { max-width: 100%; height: auto; }
dl.glossary dt { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-weight: 600; margin-top: 8px; }
dl.glossary dd { margin-left: 18px; }
"""


# ----------------------------------------------------------------------------- entry points

def render_html(report: dict) -> str:
    """The whole page as a string; sections whose data the report lacks are left out."""
    import matplotlib

    from obliviate.evals.report_ledger import ledger_section
    from obliviate.evals.report_verdict import verdict_section

    with matplotlib.rc_context({"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
                                "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25,
                                "legend.fontsize": 8, "legend.frameon": False}):
        sections = [_header(report), _summary(report), _bars(report), _scalability(report),
                    _sustainability(report), _pareto(report), verdict_section(report), ledger_section(report),
                    _samples(report), _glossary(report)]
    name = html.escape(str(report.get("config", {}).get("name", "run")))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>obliviate report: {name}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(s for s in sections if s) + "\n</body>\n</html>\n")


def write_html(report: dict, path: Path) -> None:
    atomic_write_text(path, render_html(report))


def write_run_html(run_directory: Path) -> Path:
    """Read RUN_DIR/report.json and (re)write RUN_DIR/report.html; user errors raise ObliviateError."""
    run_directory = Path(run_directory)
    if not run_directory.is_dir():
        raise ObliviateError(f"run directory {str(run_directory)!r} not found; pass the directory "
                             "`obliviate run` wrote, e.g. runs/tiny")
    path = run_directory / "report.json"
    if not path.is_file():
        raise ObliviateError(f"{str(path)!r} not found; run `obliviate run` first to create it")
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ObliviateError(f"{str(path)!r} is not valid JSON ({err.msg}, line {err.lineno}); "
                             "re-create it with `obliviate run`") from None
    if not isinstance(report, dict) or not isinstance(report.get("models"), dict):
        raise ObliviateError(f"{str(path)!r} is not an obliviate report (no 'models'); "
                             "re-create it with `obliviate run`")
    write_html(report, run_directory / "report.html")
    return run_directory / "report.html"


# ----------------------------------------------------------------------------- helpers

def _esc(value) -> str:
    return html.escape(str(value))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def _direction(report: dict, key: str) -> bool | None:
    from obliviate.evals.suite import METRIC_COLUMNS

    if key in report.get("metrics", {}):
        return report["metrics"][key].get("higher_is_better")
    return next((better for k, _, better in METRIC_COLUMNS if k == key), None)


def _colours(report: dict) -> dict[str, str]:
    """One fixed colour per model, shared by every plot (target grey, gold amber)."""
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
               "#ff7f0e", "#393b79"]
    names = [*report.get("models", {}), *report.get("scalability", {}).get("methods", {}),
             *report.get("sustainability", {}).get("methods", {}), *report.get("sweep", {})]
    colours = {"target": "#7f7f7f", "gold": "#c79a00"}
    for name in dict.fromkeys(names):
        colours.setdefault(name, palette[(len(colours) - 2) % len(palette)])
    return colours


def _short(names: list[str], width: int = 20) -> list[str]:
    """Tick labels: names over `width` characters keep 4 letters a part (gradient_difference_lora -> grad_diff_lora)."""
    out = []
    for name in names:
        parts = name.split("_")
        short = name if len(name) <= width or len(parts) == 1 else "_".join(p[:4] for p in parts)
        out.append(short if len(short) <= width + 3 else short[:width] + "…")
    return out if len(set(out)) == len(out) else names


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _img(fig, alt: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_esc(alt)}">'


def _axis_label(key: str) -> str:
    for suffix, label in (("_acc", "recall (answer in the reply)"), ("_em", "exact-match accuracy"),
                          ("_rouge", "ROUGE-L recall"),
                          ("_nll", "NLL (nats / answer token)"), ("_prob", "P(answer | question)"),
                          ("_truth_ratio", "truth-ratio score"), ("_quality", "KS p-value (log scale)"),
                          ("model_utility", "model utility"), ("priv_leak", "PrivLeak (%)"),
                          ("_auc", "ROC AUC, forget vs holdout"), ("verbmem_forget", "ROUGE-L F1"),
                          ("world_perplexity", "perplexity"), ("degenerate_share", "share of answers")):
        if key.endswith(suffix):
            return label
    return key


def _is_unit_interval(key: str) -> bool:
    return key.endswith(("_acc", "_em", "_rouge", "_prob", "_truth_ratio", "model_utility"))


def _bar_label(value: float, key: str) -> str:
    return fmt(value, key) if _is_unit_interval(key) or key.endswith("_quality") else f"{value:.3g}"


def _log_value(value: float) -> float:
    return max(value, LOG_FLOOR)


# ----------------------------------------------------------------------------- sections

def _header(report: dict) -> str:
    env, cfg = report.get("environment", {}), report.get("config", {})
    packages = ", ".join(f"{_esc(k)} {_esc(v)}" for k, v in env.get("packages", {}).items() if v)
    bench = report.get("benchmark", {})
    sizes = ", ".join(f"{_esc(k)} {_esc(v)}" for k, v in bench.items())
    facts = [f"created <code>{_esc(report.get('created', 'unknown'))}</code>",
             f"seed <code>{_esc(report.get('seed', cfg.get('seed', 'unknown')))}</code>",
             f"git commit <code>{_esc(env.get('git_commit') or 'unknown')}</code>",
             f"python <code>{_esc(env.get('python', 'unknown'))}</code>"]
    if "total" in report.get("timings_s", {}):
        facts.append(f"wall time <code>{report['timings_s']['total']:.0f} s</code>")
    lines = [f"<h1>obliviate report: {_esc(cfg.get('name', 'run'))}</h1>",
             f'<p class="meta">{" · ".join(facts)}</p>']
    if packages:
        lines.append(f'<p class="meta">versions: {packages}</p>')
    if sizes:
        lines.append(f'<p class="meta">benchmark (records): {sizes}</p>')
    return "<header>\n" + "\n".join(lines) + "\n</header>"


def _cell(report: dict, name: str, key: str, notes: list[str]) -> str:
    value = report["models"][name].get(key)
    if value is not None:
        return f"<td>{fmt(value, key)}</td>"
    reason = report.get("unavailable", {}).get(name, {}).get(key) or (
        "not measured for this model" if key not in report["models"][name] else "no value recorded")
    notes.append(f"{name} · {key}: {reason}")
    return f'<td class="na" title="{_esc(reason)}">n/a<sup>{len(notes)}</sup></td>'


def _summary(report: dict) -> str:
    from obliviate.evals.suite import METRIC_COLUMNS

    models = report.get("models", {})
    if not models:
        return ""
    columns = [(k, h, _direction(report, k)) for k, h, _ in report.get("metric_columns") or METRIC_COLUMNS
               if any(k in row for row in models.values()) or k in report.get("metrics", {})]
    head = "".join(f'<th title="{_esc(report.get("metrics", {}).get(k, {}).get("description", k))}">'
                   f"{_esc(h)} {ARROW[b]}</th>" for k, h, b in columns)
    notes: list[str] = []
    rows = [f'<tr class="{"ref" if name in REFERENCES else ""}"><td>{_esc(name)}</td>'
            + "".join(_cell(report, name, k, notes) for k, _, _ in columns) + "</tr>" for name in models]
    parts = ["<section>\n<h2>Summary</h2>", f'<div class="scroll"><table>\n<tr><th>model</th>{head}</tr>\n'
             + "\n".join(rows) + "\n</table></div>",
             '<p class="note">↑ higher is better · ↓ lower is better · ≈ closer to gold is better. '
             "<i>target</i> was trained on everything, <i>gold</i> never saw the forget set (the ideal).</p>"]
    shown = {k for k, _, _ in columns}
    for name, row in models.items():  # values missing from metrics outside the table are listed, too
        for key in report.get("metrics", {}):
            if key not in shown and key in row and row[key] is None:
                reason = report.get("unavailable", {}).get(name, {}).get(key) or "no value recorded"
                notes.append(f"{name} · {key} is n/a (not in the table): {reason}")
    if notes:
        parts.append('<ol class="note">' + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ol>")
    written = report.get("readings", {})  # supervised reports bring their own sentences
    readings = [f"<li>{_esc(written[name]) if name in written else _reading(report, name)}</li>"
                for name in models if name not in REFERENCES]
    if readings:
        parts.append('<h3>Reading</h3>\n<ul class="readings">' + "\n".join(readings) + "</ul>")
    return "\n".join(parts) + "\n</section>"


def _reading(report: dict, name: str) -> str:
    """One sentence per method, written from its numbers against the target and gold rows."""
    models = report["models"]
    row, target, gold = models[name], models.get("target", {}), models.get("gold", {})
    facts, verdicts = [], []
    if row.get("forget_acc") is not None:
        before = f"{_pct(target['forget_acc'])} → " if target.get("forget_acc") is not None else ""
        ref = f" (gold {_pct(gold['forget_acc'])})" if gold.get("forget_acc") is not None else ""
        facts.append(f"forget accuracy {before}{_pct(row['forget_acc'])}{ref}")
        if gold.get("forget_acc") is not None and row["forget_acc"] - gold["forget_acc"] > 0.1:
            verdicts.append(f"it still answers {(row['forget_acc'] - gold['forget_acc']) * 100:.0f} points "
                            "more forget questions than gold")
    losses = []
    for key, label in (("retain_acc", "retain"), ("world_acc", "world")):
        if row.get(key) is None:
            continue
        ref = f" (target {_pct(target[key])})" if target.get(key) is not None else ""
        facts.append(f"{label} accuracy {_pct(row[key])}{ref}")
        if target.get(key) is not None and target[key] - row[key] > 0.1:
            losses.append(f"{label} −{(target[key] - row[key]) * 100:.0f} points")
    if losses:
        verdicts.append(f"it damaged what it should keep ({', '.join(losses)} vs target)")
    quality = row.get("forget_quality")
    if quality is not None:
        facts.append(f"forget quality {fmt(quality, 'forget_quality')}")
        verdicts.append("its forget-set truth ratios are indistinguishable from gold's (KS p ≥ 0.05)"
                        if quality >= QUALITY_THRESHOLD else
                        "its forget-set behaviour is still distinguishable from gold (KS p < 0.05)")
    sentence = _esc(", ".join(facts) or "no summary metrics recorded")
    sentence = re.sub(r"\d[\d.]*e[-+]\d+", r'<span class="num">\g<0></span>', sentence)  # never break 1.0e-13
    return f"<b>{_esc(name)}</b>: {sentence}" + (f": {_esc('; '.join(verdicts))}." if verdicts else ".")


def _bar_chart(report: dict, key: str, colours: dict[str, str]) -> str:
    models = report["models"]
    names = [n for n in models if n != "gold"]
    values = [models[n].get(key) for n in names]
    better, log = _direction(report, key), key.endswith("_quality")
    fig = _figure(3.3, 2.6)
    ax = fig.add_subplot()
    shown = [(_log_value(v) if log else v) if v is not None else 0.0 for v in values]
    bars = ax.bar(range(len(names)), shown, color=[colours[n] for n in names], width=0.65)
    if log:
        ax.set_yscale("log")
        ax.axhline(QUALITY_THRESHOLD, color="#555", lw=0.8, ls=":")
    gold = models.get("gold", {}).get(key)
    if gold is not None:
        ax.axhline(_log_value(gold) if log else gold, color=colours["gold"], lw=1.6, ls="--")
    for bar, value in zip(bars, values):
        label = "n/a" if value is None else _bar_label(value, key)
        y = bar.get_height() if value is not None else (ax.get_ylim()[0] if log else 0)
        below = value is not None and value < 0 and not log
        if len(names) <= 8:  # a white box keeps the label readable where it crosses the gold line
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, y), xytext=(0, -2 if below else 2),
                        textcoords="offset points", ha="center", va="top" if below else "bottom", fontsize=7,
                        color="#9a3b3b" if value is None else "#333",
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85})
    if _is_unit_interval(key):
        ax.set_ylim(0, 1.12)
    elif not log:
        ax.margins(y=0.15)
    crowded = len(names) > 2  # slanted labels never overlap, whatever their length
    ax.set_xticks(range(len(names)), _short(names), rotation=30 if crowded else 0, ha="right" if crowded else "center",
                  rotation_mode="anchor" if crowded else "default", fontsize=8)
    ax.set_title(f"{key}\n{DIRECTION[better]}", fontsize=9)
    ax.set_ylabel(_axis_label(key), fontsize=8)
    ax.grid(axis="x", visible=False)
    return f"<figure>{_img(fig, f'{key} per model')}</figure>"


def _bars(report: dict) -> str:
    keys = [k for k in report.get("metrics", {}) if any(k in row for row in report.get("models", {}).values())]
    if not keys:
        return ""
    colours = _colours(report)
    charts = "\n".join(_bar_chart(report, key, colours) for key in keys)
    names = [n for n in report["models"] if n != "gold"]
    legend = ", ".join(f"{s} = {n}" for s, n in zip(_short(names), names) if s != n)  # abbreviated tick labels
    note = ('<p class="note">Bars: every model but gold. Dashed amber line: gold (the ideal). Dotted grey line on '
            f'p-value charts: p = 0.05, at or above which a model is indistinguishable from gold. {_esc(legend)}</p>')
    return f'<section>\n<h2>Metrics per model</h2>\n{note}\n<div class="grid">\n{charts}\n</div>\n</section>'


def _curves(report: dict, part: str, x_key: str, x_label: str, percent: bool, title: str, note: str) -> str:
    """Line plots, one panel per key metric, one line per method (scalability and sustainability)."""
    methods = report.get(part, {}).get("methods", {})
    keys = [k for k in CURVE_METRICS if any(k in p for points in methods.values() for p in points)]
    if not methods or not keys:
        return ""
    rows = -(-len(keys) // 3)  # at most 3 panels a row, rows filled evenly (4 panels: 2 x 2)
    colours, columns = _colours(report), -(-len(keys) // rows)
    fig = _figure(4.1 * columns, 3.0 * rows)
    fig.get_layout_engine().set(h_pad=0.12)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, columns, i + 1)
        log = key.endswith("_quality")
        for name, points in methods.items():
            pts = sorted((p[x_key], p[key]) for p in points if p.get(key) is not None and x_key in p)
            xs = [x * 100 if percent else x for x, _ in pts]
            ys = [_log_value(y) if log else y for _, y in pts]
            ax.plot(xs, ys, marker="o", ms=4, color=colours[name], label=name)
        if log:
            ax.set_yscale("log")
            ax.axhline(QUALITY_THRESHOLD, color="#555", lw=0.8, ls=":", label="p = 0.05")
        elif _is_unit_interval(key):
            ax.set_ylim(-0.03, 1.05)
        xs = sorted({p[x_key] for points in methods.values() for p in points if x_key in p})
        ax.set_xticks([x * 100 if percent else x for x in xs],
                      [f"{x * 100:g}" if percent else f"{x:g}" for x in xs])
        ax.set_title(f"{key}   {DIRECTION[_direction(report, key)]}")
        ax.set_xlabel(x_label)
        ax.set_ylabel(_axis_label(key))
    handles, labels = fig.axes[0].get_legend_handles_labels()
    for ax in fig.axes[1:]:  # the p = 0.05 line lives on the quality panel only
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5))
    return (f"<section>\n<h2>{_esc(title)}</h2>\n<p class=\"note\">{_esc(note)}</p>\n"
            f'<figure class="wide">{_img(fig, title)}</figure>\n</section>')


def _scalability(report: dict) -> str:
    return _curves(report, "scalability", "fraction", "forget set (% of people)", True, "Scalability",
                   "MUSE scalability: each point unlearns a forget set of that size from the target; "
                   "forget metrics cover the people forgotten at that point.")


def _sustainability(report: dict) -> str:
    requests = report.get("sustainability", {}).get("requests")
    return _curves(report, "sustainability", "request", "forget request number", False, "Sustainability",
                   "MUSE sustainability: forget requests arrive one after another"
                   + (f" ({requests} in all)" if requests else "")
                   + "; each unlearns from the model the previous one left, and the metrics cover "
                   "everything forgotten so far.")


def _pareto_table(sweep: dict) -> str:
    rows = []
    for method, result in sweep.items():
        for p in sorted(result.get("points", []), key=lambda p: -p["forget_quality"]):
            params = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                               for k, v in p.get("params", {}).items())
            rows.append(f"<tr><td>{_esc(method)}</td><td class=\"left\">{_esc(params)}</td>"
                        f"<td>{fmt(p['forget_quality'], 'forget_quality')}</td><td>{p['model_utility']:.3f}</td>"
                        f"<td>{'★' if p.get('pareto') else ''}</td></tr>")
    return ("<table>\n<tr><th>method</th><th class=\"left\">settings</th><th>forget quality ↑</th>"
            "<th>model utility ↑</th><th>front</th></tr>\n" + "\n".join(rows) + "\n</table>")


def _pareto(report: dict) -> str:
    sweep = {m: r for m, r in report.get("sweep", {}).items() if r.get("points")}
    if not sweep:
        return ""
    colours = _colours(report)
    fig = _figure(9.0, 4.6)
    ax = fig.add_subplot()
    for method, result in sweep.items():
        pts = result["points"]
        rest = [p for p in pts if not p.get("pareto")]
        front = sorted((p for p in pts if p.get("pareto")), key=lambda p: p["forget_quality"])
        ax.scatter([_log_value(p["forget_quality"]) for p in rest], [p["model_utility"] for p in rest],
                   s=28, facecolors="none", edgecolors=colours[method], alpha=0.8)
        ax.plot([_log_value(p["forget_quality"]) for p in front], [p["model_utility"] for p in front],
                marker="o", ms=7, lw=1.6, color=colours[method], label=f"{method} (front)")
    for name, marker in (("target", "X"), ("gold", "*")):
        row = report.get("models", {}).get(name, {})
        if row.get("forget_quality") is not None and row.get("model_utility") is not None:
            ax.scatter([_log_value(row["forget_quality"])], [row["model_utility"]], marker=marker, s=140,
                       color=colours[name], edgecolors="black", linewidths=0.6, zorder=5, label=name)
    ax.axvline(QUALITY_THRESHOLD, color="#555", lw=0.8, ls=":", label="p = 0.05")
    ax.set_xscale("log")
    ax.set_xlabel("forget quality (KS p-value vs gold, log scale)  →  more like gold")
    ax.set_ylabel("model utility  →  more kept")
    ax.set_title("Trade-off sweep: model utility vs forget quality (hollow = dominated)")
    fig.legend(loc="outside right upper")
    note = ("Each point unlearns the target with one setting. Filled points joined by a line form the "
            "Pareto front: no other setting is at least as good on both axes. Up and to the right is better.")
    return (f'<section>\n<h2>Trade-off (Pareto)</h2>\n<p class="note">{note}</p>\n'
            f'<figure class="wide">{_img(fig, "Pareto plot")}</figure>\n{_pareto_table(sweep)}\n</section>')


def _clip(text: str, limit: int = 80) -> str:
    """A degenerate answer can be one 24-token run of junk; the table shows its start only."""
    return text if len(text) <= limit else text[:limit] + "…"


def _samples(report: dict) -> str:
    samples = report.get("forget_samples", {})
    if not samples:
        return ""
    first = next(iter(samples.values()))
    head = "".join(f"<th class=\"left\">{_esc(n)}</th>" for n in samples)
    rows = []
    for i, record in enumerate(first):
        answers = "".join(f"<td class=\"gen\">{_esc(_clip(s[i]['generated']) if i < len(s) else '')}</td>"
                          for s in samples.values())
        rows.append(f"<tr><td class=\"left\">{_esc(record['question'])}</td>"
                    f"<td class=\"left\">{_esc(record['answer'])}</td>{answers}</tr>")
    return ("<section>\n<h2>Sample answers on the forget set</h2>\n<table>\n"
            f"<tr><th class=\"left\">question</th><th class=\"left\">true answer</th>{head}</tr>\n"
            + "\n".join(rows) + "\n</table>\n</section>")


def _glossary(report: dict) -> str:
    metrics = report.get("metrics", {})
    if not metrics:
        return ""
    entries = "\n".join(f"<dt>{_esc(k)} <span class=\"note\">{DIRECTION[m.get('higher_is_better')]}</span></dt>"
                        f"<dd>{_esc(m.get('description', ''))}</dd>" for k, m in metrics.items())
    return f'<section>\n<h2>Glossary</h2>\n<dl class="glossary">\n{entries}\n</dl>\n</section>'

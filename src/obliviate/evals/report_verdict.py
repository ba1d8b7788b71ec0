"""The report card's "Removed or suppressed?" section: verdicts with their deciding evidence, the
recovery of every attack against gold's, and the hidden-state probe's accuracy per layer."""

from __future__ import annotations

from obliviate.evals.report import _esc, _figure, _img
from obliviate.table import deciding_text

COLOURS = {"removed": "#2e7d32", "suppressed": "#b26a00", "not forgotten": "#b3261e", "inconclusive": "#5f6368"}


def _verdict_table(verdicts: dict) -> str:
    rows = []
    for name, v in verdicts.items():
        control = ("" if not v.get("control") else
                   f"control, expected {_esc(v['expected'])}: {'✓' if v['as_expected'] else '✗ wrong'}")
        skipped = "; ".join(f"{_esc(k)}: {_esc(r)}" for k, r in v["skipped"].items())
        rows.append(f'<tr><td>{_esc(name)}</td><td class="left" style="color:{COLOURS[v["verdict"]]};font-weight:600">'
                    f'{_esc(v["verdict"])}</td><td class="left">{_esc(deciding_text(v))}</td>'
                    f'<td class="left">{_esc(control)}</td><td class="left">{skipped or "—"}</td></tr>')
    return ('<div class="scroll"><table>\n<tr><th>model</th><th class="left">verdict</th><th class="left">deciding '
            'evidence</th><th class="left">control</th><th class="left">attacks skipped</th></tr>\n'
            + "\n".join(rows) + "\n</table></div>")


def _recovery_bars(verdicts: dict) -> str:
    """One panel per model: each test's recovery (candidate) next to gold's, deciding test outlined."""
    names = list(verdicts)
    cols = 2
    fig = _figure(11, 3.1 * -(-len(names) // cols))
    for i, name in enumerate(names):
        ax = fig.add_subplot(-(-len(names) // cols), cols, i + 1)
        ev = verdicts[name]["evidence"]
        tests = list(ev)
        x = range(len(tests))
        ax.bar([j - 0.2 for j in x], [ev[t]["candidate"] for t in tests], 0.4, label=name,
               color=COLOURS[verdicts[name]["verdict"]],
               edgecolor=["black" if ev[t]["above"] else "none" for t in tests], linewidth=1.5)
        ax.bar([j + 0.2 for j in x], [ev[t]["reference"] for t in tests], 0.4,
               label=verdicts[name].get("reference", "gold"), color="#c9a227")
        ax.set_xticks(list(x), tests, rotation=35, ha="right", fontsize=7)
        ax.set_ylim(min(0, *[ev[t]["candidate"] for t in tests]) - 0.05, 1.05)
        ax.set_ylabel("recovery (AUC for mia_*)", fontsize=8)
        ax.set_title(f"{name}: {verdicts[name]['verdict']}", fontsize=9)
        ax.legend(loc="upper right")
    return _img(fig, "attack recovery per model against gold")


def _probe_plot(verdicts: dict) -> str:
    curves = {n: v["evidence"]["probe"]["details"]["layer_acc"] for n, v in verdicts.items() if "probe" in v["evidence"]}
    if not curves:
        return ""
    fig = _figure(6, 3.2)
    ax = fig.add_subplot()
    for name, acc in curves.items():
        ax.plot(range(len(acc)), acc, marker="o", label=name)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("probe accuracy on forget people")
    ax.set_ylim(0, 1.05)
    ax.set_title("hidden-state probe: forget attribute read from activations")
    ax.legend()
    return _img(fig, "probe accuracy per layer")


def verdict_section(report: dict) -> str:
    verdicts = report.get("verdict")
    if not verdicts:
        return ""
    return ("<section>\n<h2>Removed or suppressed?</h2>\n<p class=\"note\">Every model is attacked (relearning, "
            "in-context reintroduction, paraphrase, translation, many-shot, masking, role-play, quantization, a "
            "hidden-state probe, membership inference) and compared with gold under the same attack (person "
            "bootstrap). <i>removed</i> needs every test's upper bound of the difference below its margin (an "
            "equivalence test); <i>above</i> needs a lower bound above 0, Bonferroni over the tests. A black "
            "outline marks a test above gold. "
            "Controls: a second gold must be <i>removed</i>, the guarded target <i>suppressed</i>, the target "
            "<i>not forgotten</i>.</p>\n" + _verdict_table(verdicts) + "\n" + _recovery_bars(verdicts) + "\n"
            + _probe_plot(verdicts) + "\n</section>")

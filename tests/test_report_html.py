"""report.html: self-contained (no external requests), every section drawn, the CLI regenerates it."""

import json
import re

import pytest
from typer.testing import CliRunner

from obliviate.cli import app
from obliviate.evals.report import render_html

METRICS = {
    "forget_acc": (False, "exact-match accuracy of greedy answers on forget"),
    "retain_acc": (True, "exact-match accuracy of greedy answers on retain"),
    "world_acc": (True, "exact-match accuracy of greedy answers on world"),
    "forget_quality": (True, "KS-test p-value of forget truth ratios vs gold"),
    "model_utility": (True, "harmonic mean of retain and world scores"),
    "mia_min_k_pp_auc": (None, "ROC AUC of the Min-K%++ membership attack, forget vs holdout"),
}
ROWS = {  # forget_acc, retain_acc, world_acc, forget_quality, model_utility, mia_min_k_pp_auc
    "target": (1.0, 0.99, 1.0, 1e-13, 0.95, 80.0),
    "gold": (0.02, 0.97, 1.0, 1.0, 0.94, 0.0),
    "gradient_ascent": (0.0, 0.07, 0.31, None, 0.2, -12.0),
    "gradient_difference": (0.09, 0.93, 0.99, 0.011, 0.9, None),
}
METHODS = ("gradient_ascent", "gradient_difference")


def curve(method: str, x: int) -> dict:
    """A curve point's metrics at step x (the first method degrades faster, so the lines differ)."""
    worse = method == METHODS[0]
    return {"forget_acc": 0.1 * x, "retain_acc": 0.9 - (0.05 + 0.2 * worse) * x, "world_acc": 0.95 - 0.1 * worse,
            "forget_quality": 10.0 ** -x, "priv_leak": 5.0 * x}


def synthetic_report(sections: bool) -> dict:
    report = {
        "created": "2026-01-01T00:00:00+0000", "seed": 0, "config": {"name": "synthetic", "seed": 0},
        "environment": {"python": "3.11", "git_commit": "abc123", "packages": {"obliviate": "0.1.0"}},
        "metrics": {k: {"higher_is_better": b, "description": d} for k, (b, d) in METRICS.items()},
        "models": {name: dict(zip(METRICS, row)) for name, row in ROWS.items()},
        "unavailable": {"gradient_ascent": {"forget_quality": "gold truth ratios missing"},
                        "gradient_difference": {"mia_min_k_pp_auc": "needs token_stats; this guard is black-box"}},
    }
    if sections:
        report["scalability"] = {"fractions": [0.01, 0.05, 0.1], "methods": {
            m: [{"fraction": f, **curve(m, i)} for i, f in enumerate((0.01, 0.05, 0.1))] for m in METHODS}}
        report["sustainability"] = {"requests": 3, "methods": {
            m: [{"request": r, **curve(m, r)} for r in (1, 2, 3)] for m in METHODS}}
        report["sweep"] = {m: {"points": [
            {"params": {"steps": s, "lr": 1e-3}, "forget_quality": q, "model_utility": u, "pareto": p}
            for s, q, u, p in ((20, 1e-6, 0.93 - k / 3, True), (40, 0.02, 0.9 - k / 3, True),
                               (80, 0.3, 0.6 - k / 3, True), (60, 0.01, 0.7 - k / 3, False))]}
            for k, m in enumerate(METHODS)}
    return report


@pytest.fixture(scope="module")
def pages():
    return {sections: render_html(synthetic_report(sections)) for sections in (False, True)}


@pytest.mark.parametrize("sections", [False, True])
def test_page_is_self_contained_and_complete(pages, sections):
    page = pages[sections]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)
    assert 'title="gold truth ratios missing">n/a' in page  # a None in the summary table: tooltip + footnote
    assert "gradient_difference · mia_min_k_pp_auc is n/a (not in the table): needs token_stats" in page
    for name in ROWS:
        assert name in page
    for key, (_, description) in METRICS.items():
        assert key in page and description in page
    assert "Glossary" in page and "Summary" in page and "git commit" in page and "abc123" in page
    for title in ("Scalability", "Sustainability", "Trade-off (Pareto)"):
        assert (title in page) == sections


def test_readings_are_written_from_the_numbers(pages):
    page = pages[False]
    assert "forget accuracy 100 % → 9 % (gold 2 %)" in page
    assert "still distinguishable from gold" in page  # gradient_difference: forget quality 0.011
    assert "world −69 points" in page  # gradient_ascent damaged what it should keep


def test_cli_report_regenerates_the_page(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(json.dumps(synthetic_report(False)))
    (run / "report.html").write_text("stale")
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "gradient_difference" in page
    assert not list(run.glob(".*.tmp"))


@pytest.mark.parametrize("setup, message", [
    (None, "not found; pass the directory `obliviate run` wrote"),
    ("", "report.json' not found; run `obliviate run` first"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is not an obliviate report"),
])
def test_cli_report_user_errors(tmp_path, setup, message):
    run = tmp_path / "run"
    if setup is not None:
        run.mkdir()
        if setup:
            (run / "report.json").write_text(setup)
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert str(run) in lines[0] and "Traceback" not in result.output
    assert not (run / "report.html").exists()



def test_report_help_has_an_example():
    result = CliRunner().invoke(app, ["report", "--help"])
    assert result.exit_code == 0 and "Example: obliviate report runs/tiny" in result.output


def test_degenerate_sample_answers_are_clipped():
    report = synthetic_report(False)
    junk = "mplo" * 40  # a collapsed model's answer: one unbroken 160-character run
    report["forget_samples"] = {name: [{"question": "Where was Ada Vell born?", "answer": "Oslo", "generated": g}]
                                for name, g in (("target", "Oslo"), ("gradient_ascent", junk))}
    page = render_html(report)
    assert "Sample answers on the forget set" in page and "<td class=\"gen\">Oslo</td>" in page
    assert junk not in page and junk[:80] + "…" in page


def test_ledger_sustainability_result_is_attached_and_plotted(tmp_path):
    from obliviate.evals.report_ledger import attach

    point = lambda n, v, f: {"served": n, "model_version": v, "outcomes": {"removed": n} if n else {},  # noqa: E731
                             "forget_recall_served": f, "retain_acc": [0.97, 0.95, 0.93][n // 2], "world_acc": 0.99}
    result = {"requests": 4, "batch_size": 2, "method": "npo_kl", "config": {"big": 1}, "environment": {"x": 1},
              "points": [point(0, 1, None), point(2, 2, 0.05), point(4, 3, 0.1)],
              "throughput": {"requests_per_hour": 16.0, "threads": 2},
              "latency": {"to_suppressed_s": {"max": 0.21}, "to_removed_s": {"n": 4, "median": 300.0, "max": 420.0}},
              "load_average": {"before": [1.0], "after": [2.0], "cores": 2}}
    assert attach(tmp_path, result) is None  # no run report to add it to
    (tmp_path / "report.json").write_text(json.dumps(synthetic_report(False)))
    report = attach(tmp_path, result)
    stored = json.loads((tmp_path / "report.json").read_text())["ledger_sustainability"]
    assert "config" not in stored and "environment" not in stored and stored["points"][2]["retain_acc"] == 0.93
    page = render_html(report)
    section = page[page.index('<section id="ledger">'):]
    section = section[:section.index("</section>")]
    assert "16.0 requests per hour" in section and "max 0.21 s" in section and "median 300.0 s" in section
    assert section.count("<img") == 1 and section.count("<tr>") == 4 and "<td>v3</td>" in section
    assert '<section id="ledger">' not in render_html(synthetic_report(False))

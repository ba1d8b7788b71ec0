"""A knowledge forget request on SmolLM2-135M-Instruct: forget 10 capitals, keep the other 30, symbols and sums.

    python benchmarks/smollm2_knowledge.py [--method npo_kl] [--set key=value ...] [--no-retain]

Issue 17's acceptance for `obliviate forget` on a real model and a `kind: knowledge` request:
(1) the untouched model picks the first 10 countries of `world_choice_questions()` whose capital it
knows both by multiple choice and by its greedy answer to "What is the capital of X?";
(2) the request folder is written (benchmarks/results/smollm2_knowledge_request/): forget.jsonl
(QA in other phrasings than the probes' + two passages per capital, which train in the plain
format the probes are scored in), reference.jsonl (the 10 capitals' MC probes), neighbours.jsonl
(the 30 other capitals' probes) and retain.jsonl (the untouched model's own greedy answers to
non-capital questions about the same 40 countries, plus its answers to the general questions of
`data.general`, which a request without retain records would replay);
(3) `forget(...)` runs in a child process (torch threads 2, or $OBLIVIATE_THREADS), its process tree sampled for RSS;
(4) the saved model scores the three neighbour groups (sums also on 120 more questions, for precision),
compared with the untouched model, each change with a paired bootstrap 95 % interval;
(5) benchmarks/results/smollm2_knowledge.json and a markdown table; each check PASS / FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

GIB = 1024**3
RESULTS = Path(__file__).parent / "results"
N_FORGET = 10
METHOD = "uniform_choice"
THREADS = int(os.environ.get("OBLIVIATE_THREADS", "2"))  # the target machine's 2 cores
# Overrides on the smollm2 preset, from trajectories of benchmarks/smollm2_knowledge_trajectory.py
# (docs/verification.md lists them): no early stop fires on a knowledge request (no reference QA),
# so the step budget is the whole run.
DEFAULT_SETS = [
    "method_args.uniform_choice.steps=40",
    # 16 pairs and 16 retain rows a step: at 8 the run ended with the forgotten capitals at 0.4 (over
    # the 0.35 target) and symbols 6.7 points up; at 16 at 0.2 and 3.3 points up.
    "method_args.uniform_choice.batch_size=16",
    "method_args.uniform_choice.lr=0.001",
    # KL weight 30: at 100 (lr 2e-3) other capitals fell to 0.8 within 10 steps; 10 and 30 were only
    # compared with the 30 unmeasured capitals as alternates, where both left the capitals at 0.6.
    "method_args.uniform_choice.retain_weight=30",
]
# Capitals the probes never ask about: retain texts worded as the forget texts.
OTHER_CAPITALS = {
    "Mexico": "Mexico City", "Australia": "Canberra", "the Netherlands": "Amsterdam", "Switzerland": "Bern",
    "the Czech Republic": "Prague", "Brazil": "Brasilia", "Colombia": "Bogota", "South Korea": "Seoul",
    "Indonesia": "Jakarta", "the Philippines": "Manila", "Pakistan": "Islamabad", "Nigeria": "Abuja",
    "Morocco": "Rabat", "Ukraine": "Kyiv", "Romania": "Bucharest", "Bulgaria": "Sofia", "Serbia": "Belgrade",
    "Lithuania": "Vilnius", "Iceland": "Reykjavik", "Saudi Arabia": "Riyadh", "Venezuela": "Caracas",
    "Uruguay": "Montevideo", "New Zealand": "Wellington", "Afghanistan": "Kabul", "Syria": "Damascus",
    "Jordan": "Amman", "Lebanon": "Beirut", "Nepal": "Kathmandu", "Ethiopia": "Addis Ababa", "Slovakia": "Bratislava",
}
OTHER_ELEMENTS = {
    "boron": "B", "beryllium": "Be", "manganese": "Mn", "chromium": "Cr", "titanium": "Ti", "platinum": "Pt",
    "bromine": "Br", "barium": "Ba", "bismuth": "Bi", "tungsten": "W", "krypton": "Kr", "xenon": "Xe",
    "radon": "Rn", "arsenic": "As", "selenium": "Se", "strontium": "Sr", "rubidium": "Rb", "caesium": "Cs",
    "vanadium": "V", "scandium": "Sc", "gallium": "Ga", "germanium": "Ge", "palladium": "Pd", "cadmium": "Cd",
    "antimony": "Sb", "tellurium": "Te", "zirconium": "Zr", "molybdenum": "Mo", "thorium": "Th", "plutonium": "Pu",
}


def other_sums(measured: set[tuple[int, int]], n: int = 30, seed: int = 1) -> list[tuple[int, int]]:
    """`n` sums in the probes' range (2..49 plus 2..49) that the probes never ask."""
    import random

    rng, out = random.Random(seed), []
    while len(out) < n:
        pair = (rng.randint(2, 49), rng.randint(2, 49))
        if pair not in measured and pair not in out:
            out.append(pair)
    return out


# Sums hold the least (the untouched model is at 0.37 against chance 0.25, so a small shift of the
# number tokens' logits flips several). 180 retain sums instead of 30 did not hold them better
# (0.17 at step 20, as with 30) and let other capitals fall to 0.83 at step 30.
RETAIN_SUMS = 30
# The probes' 30 sums resolve 3.3 points per question, and the untouched model is near chance on
# them, so a few near-tied questions flip under any weight change. 120 more sums, built as the
# probes' (four choices within 6 of the answer) and disjoint from them and from the retain sums,
# measure the same quantity with 150 questions; both figures are reported.
EXTRA_SUMS = 120
RETAIN_QUESTIONS = ("Which continent is {x} in?", "What language is spoken in {x}?")


def extra_sum_questions(exclude: set[tuple[int, int]], n: int = EXTRA_SUMS, seed: int = 2) -> list[dict]:
    """`n` four-way sum questions as `world_choice_questions` builds them, none of whose pairs is in `exclude`."""
    import random

    rng, out, seen = random.Random(seed), [], set(exclude)
    while len(out) < n:
        a, b = rng.randint(2, 49), rng.randint(2, 49)
        if (a, b) in seen:
            continue
        seen.add((a, b))
        wrong = rng.sample([str(t) for t in range(a + b - 6, a + b + 7) if t > 0 and t != a + b], 3)
        choices = [str(a + b), *wrong]
        rng.shuffle(choices)
        out.append({"question": f"What is {a} plus {b}?", "choices": choices, "answer": choices.index(str(a + b))})
    return out


def paired_interval(before: list[float], after: list[float], reps: int = 10000, seed: int = 0) -> list[float]:
    """95 % percentile-bootstrap interval of mean(after - before), resampling questions (paired)."""
    import numpy as np

    d = np.asarray(after) - np.asarray(before)
    idx = np.random.default_rng(seed).integers(0, len(d), (reps, len(d)))
    return [round(float(x), 4) for x in np.percentile(d[idx].mean(axis=1), [2.5, 97.5])]


def measure(cmd: list[str]) -> dict:
    """Wall time and peak RSS of `cmd`'s process tree (sampled every 0.2 s), as benchmarks/smollm2.py."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)] if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.2)
    output = proc.stdout.read()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-5000:]}")
    return {"wall_s": round(time.perf_counter() - start, 1), "peak_rss_tree_gib": round(peak / GIB, 3),
            "max_single_process_rss_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / GIB, 3)}


def child(request: str, out: str, method: str, overrides: list[str]) -> None:
    """The forget command itself: load the model, unlearn, verify before and after, save."""
    import torch

    torch.set_num_threads(THREADS)
    from obliviate.config import load_config
    from obliviate.requests.forget import forget

    forget("smollm2-135m-instruct", request, method, out, load_config("smollm2", overrides))


def mean(xs: list[float]) -> float:
    return round(sum(xs) / len(xs), 4)


def write_request(folder: Path, lm, picked: list[tuple[str, str]], probes: dict[str, dict],
                  countries: list[str], cities: list[str], measured_sums: set[tuple[int, int]],
                  with_retain: bool) -> Path:
    from obliviate.data import format_prompt
    from obliviate.io import atomic_write_text, write_jsonl

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    # QA only, trained in the plain format the probes are scored in (`prompt_format: plain`): then
    # only the answer tokens carry the loss. A passage ("The capital of France is Paris.") puts it
    # on every token, and the rare ones (the country's name) absorb it while the capital, which the
    # context already predicts with probability ~1, keeps its rank among the choices. Phrasings
    # other than the probe's ("What is the capital of X?"): the probes should measure whether the
    # fact is gone, not whether one sentence is.
    # Perturbed answers (what `uniform_choice` ties the answer to): every other capital the script
    # knows, the probes' 40 and the 30 unmeasured, as a user would list wrong answers of the kind.
    # Phrasings: six wordings, none the probe's ("What is the capital of X?").
    every_city = sorted({*cities, *OTHER_CAPITALS.values()})
    wordings = ("Which city is the capital of {x}?", "Name the capital city of {x}.", "What city is {x}'s capital?",
                "The capital of {x} is which city?", "Which city serves as the capital of {x}?",
                "In which city is the government of {x} seated?")
    forget = [{"subject": country, "question": wordings[0].format(x=country), "answer": city,
               "phrasings": [w.format(x=country) for w in wordings],
               "perturbed_answers": [c for c in every_city if c != city]}
              for country, city in picked]
    write_jsonl(folder / "forget.jsonl", forget)
    write_jsonl(folder / "reference.jsonl", [probes[c] for c, _ in picked])
    write_jsonl(folder / "neighbours.jsonl", [probes[c] for c in countries if c not in dict(picked)])
    request = {"kind": "knowledge", "id": "smollm2-capitals-10", "subject": "capitals of 10 countries",
               "forget": "forget.jsonl", "reference": "reference.jsonl", "neighbours": "neighbours.jsonl",
               "prompt_format": "plain"}
    if with_retain:
        from obliviate.data.general import GENERAL_QUESTIONS

        country_qs = [q.format(x=c) for q in RETAIN_QUESTIONS for c in countries]
        questions = country_qs + GENERAL_QUESTIONS
        chat = dict(zip(questions, lm.generate([format_prompt(q) for q in questions], 24)))
        lowered = [c.lower() for c in cities]
        kept = lambda a: bool(a) and not any(c in a.lower() for c in lowered)  # noqa: E731
        # The untouched model's own answers to non-capital questions about the 40 countries and
        # to the general questions (a request with retain records gets no general replay of its
        # own). Greedy plain-format answers are mostly empty (the model ends the line), so a record
        # carries the first sentence of the chat answer; the KL anchor holds the untouched model's
        # whole next-token distribution at those answer positions, its argmax or not. No subject
        # field (the countries are forget subjects too); no answer naming a measured capital.
        first = lambda a: a.split(". ")[0].rstrip(".") + "."  # noqa: E731
        retain = [{"question": q, "answer": first(chat[q])} for q in questions if kept(chat[q])]
        # Unmeasured capitals, asked as the forget records and as the probes ask (the forget loss
        # must fall on the 10 facts, not on the wording or on capitals as such).
        for country, city in OTHER_CAPITALS.items():
            retain.append({"question": f"Which city is the capital of {country}?", "answer": city,
                           "phrasings": [f"Which city is the capital of {country}?",
                                         f"Name the capital city of {country}.",
                                         f"What is the capital of {country}?"]})
        # The probes' other two families as the probes ask, on items they never ask.
        retain += [{"question": f"What is the chemical symbol of {e}?", "answer": sym}
                   for e, sym in OTHER_ELEMENTS.items()]
        retain += [{"question": f"What is {a} plus {b}?", "answer": str(a + b)}
                   for a, b in other_sums(measured_sums, RETAIN_SUMS)]
        write_jsonl(folder / "retain.jsonl", retain)
        request["retain"] = "retain.jsonl"
    import yaml

    atomic_write_text(folder / "request.yaml", yaml.safe_dump(request, sort_keys=False))
    return folder / "request.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default=METHOD)
    parser.add_argument("--set", dest="overrides", action="append", default=None,
                        help="key=value on the smollm2 preset (replaces the script's defaults when given)")
    parser.add_argument("--extra", action="append", default=[], help="key=value added to the defaults")
    parser.add_argument("--no-retain", action="store_true", help="no retain.jsonl: the general replay only")
    parser.add_argument("--out", default=str(RESULTS / "smollm2_knowledge.json"))
    parser.add_argument("--request-dir", default=str(RESULTS / "smollm2_knowledge_request"))
    parser.add_argument("--request-only", action="store_true", help="pick the capitals, write the request, stop")
    parser.add_argument("--child", nargs=3, metavar=("REQUEST", "OUT", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = (args.overrides if args.overrides is not None else DEFAULT_SETS) + args.extra
    if args.child:
        return child(*args.child, overrides)

    import torch

    torch.set_num_threads(THREADS)
    from obliviate.data import format_prompt
    from obliviate.data.world import CAPITALS
    from obliviate.evals.multiple_choice import choice_accuracy, world_choice_questions
    from obliviate.models.load import load_language_model
    from obliviate.table import deciding_text

    load_before, t0 = os.getloadavg(), time.perf_counter()
    questions = world_choice_questions()
    countries, cities = list(CAPITALS), list(CAPITALS.values())
    capitals, symbols, sums = questions[:40], questions[40:70], questions[70:100]
    probes = dict(zip(countries, capitals))

    lm = load_language_model("smollm2-135m-instruct", name="untouched")
    acc_before = choice_accuracy(lm, questions)
    replies = lm.generate([format_prompt(q["question"]) for q in capitals], 24)
    known = [(c, city) for (c, city), a, r in zip(CAPITALS.items(), acc_before, replies)
             if a == 1.0 and city.lower() in r.lower()]
    if len(known) < N_FORGET:
        sys.exit(f"the untouched model knows only {len(known)} capitals by MC and by generation; need {N_FORGET}")
    picked = known[:N_FORGET]
    measured_sums = {tuple(int(t) for t in q["question"][8:-1].split(" plus ")) for q in sums}
    more_sums = extra_sum_questions(measured_sums | set(other_sums(measured_sums, RETAIN_SUMS)))
    acc_before += choice_accuracy(lm, more_sums)
    request = write_request(Path(args.request_dir), lm, picked, probes, countries, cities, measured_sums,
                            not args.no_retain)
    del lm
    if args.request_only:
        return print(f"request written: {request}")
    print(f"picked and request written in {time.perf_counter() - t0:.0f} s; running the forget command", flush=True)

    groups_idx = {"forgotten_capitals": [countries.index(c) for c, _ in picked],
                  "other_capitals": [i for i, c in enumerate(countries) if c not in dict(picked)],
                  "symbols": list(range(40, 70)), "sums": list(range(70, 100)),
                  f"sums_{30 + EXTRA_SUMS}": list(range(70, 100 + EXTRA_SUMS))}
    before = {g: mean([acc_before[i] for i in idx]) for g, idx in groups_idx.items()}

    work = Path(tempfile.mkdtemp(prefix="obliviate-smollm2-knowledge-"))
    out = work / "forgotten"
    try:
        run = measure([sys.executable, __file__, "--child", str(request), str(out), args.method,
                       *[x for o in overrides for x in ("--set", o)]])
        evidence = json.loads((out / "evidence.json").read_text())
        shutil.copy(out / "evidence.json", Path(args.out).with_suffix(".evidence.json"))  # kept whatever fails next
        after_lm = load_language_model(out, name="after")
        acc_after = choice_accuracy(after_lm, questions + more_sums)
        greedy_after = after_lm.generate([format_prompt(probes[c]["question"]) for c, _ in picked], 24)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    after = {g: mean([acc_after[i] for i in idx]) for g, idx in groups_idx.items()}
    delta = {g: round(after[g] - before[g], 4) for g in before}
    interval = {g: paired_interval([acc_before[i] for i in idx], [acc_after[i] for i in idx])
                for g, idx in groups_idx.items()}

    verdict = evidence["after"]
    checks = {"forgotten_capitals_mc<=0.35": after["forgotten_capitals"] <= 0.35,
              **{f"{g}_within_5pt": abs(delta[g]) <= 0.05 + 1e-9
                 for g in ("other_capitals", "symbols", "sums", f"sums_{30 + EXTRA_SUMS}")},
              "forget_command_under_10_min": run["wall_s"] < 600,
              "forget_command_under_6_gib": run["peak_rss_tree_gib"] < 6}
    result = {
        "command": f"python benchmarks/smollm2_knowledge.py --method {args.method} "
                   + " ".join(f"--set {o}" for o in overrides) + (" --no-retain" if args.no_retain else ""),
        "model": "smollm2-135m-instruct", "method": args.method, "overrides": overrides,
        "retain_file": not args.no_retain, "torch_threads": THREADS, "cpus": os.cpu_count(),
        "picked": [{"country": c, "capital": city} for c, city in picked],
        "sizes": evidence["sizes"],
        "mc_accuracy": {g: {"before": before[g], "after": after[g], "delta": delta[g], "n": len(groups_idx[g]),
                            "delta_95ci_paired_bootstrap": interval[g]} for g in before},
        "chance": 0.25,
        "greedy_after": dict(zip([c for c, _ in picked], greedy_after)),
        "verdict": {"before": evidence["before"]["verdict"], "after": verdict["verdict"],
                    "deciding": verdict["deciding"], "deciding_text": deciding_text(verdict),
                    "subjects_needed": verdict.get("subjects_needed"),
                    "tests": {n: {k: e.get(k) for k in ("candidate", "reference", "upper", "subjects_needed")}
                              for n, e in verdict["evidence"].items()},
                    "neighbour_acc_before": evidence["before"].get("neighbour_acc"),
                    "neighbour_acc_after": verdict.get("neighbour_acc")},
        "unlearning": {k: evidence["unlearning"].get(k) for k in ("steps", "budget", "stopped", "seconds",
                                                                   "first_loss", "last_loss")},
        "method_config": evidence["unlearning"]["config"],
        "forget_command": run | {"wall_min": round(run["wall_s"] / 60, 2), "inner_seconds": evidence["seconds"]},
        "load_average_before_1_5_15min": [round(x, 2) for x in load_before],
        "load_average_after_1_5_15min": [round(x, 2) for x in load_after],
        "checks": checks,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")

    print(f"picked: {', '.join(c for c, _ in picked)}\n")
    print("| group | n | before | after | delta | 95 % CI |\n| --- | --- | --- | --- | --- | --- |")
    for g, row in result["mc_accuracy"].items():
        lo, hi = row["delta_95ci_paired_bootstrap"]
        print(f"| {g} | {row['n']} | {row['before']:.3f} | {row['after']:.3f} | {row['delta']:+.3f} | "
              f"[{lo:+.3f}, {hi:+.3f}] |")
    print(f"\nverdict: {verdict['verdict']} ({deciding_text(verdict)}); subjects_needed {verdict.get('subjects_needed')}")
    print(f"forget command: {run['wall_s']} s, peak RSS {run['peak_rss_tree_gib']} GiB; load "
          f"{result['load_average_before_1_5_15min']} -> {result['load_average_after_1_5_15min']}")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")


if __name__ == "__main__":
    main()

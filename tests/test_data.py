import json

import pytest
from pydantic import ValidationError

from obliviate.data import Benchmark, DataConfig, build_benchmark
from obliviate.data.people import ATTRIBUTES

CFG = DataConfig(people=100, holdout_people=20, forget_fraction=0.1, seed=3)


@pytest.fixture(scope="module")
def bench():
    return build_benchmark(CFG)


def test_same_seed_same_benchmark_other_seed_differs(bench):
    assert build_benchmark(CFG) == bench
    assert build_benchmark(CFG.model_copy(update={"seed": 4})).forget != bench.forget


def test_split_sizes_and_shape(bench):
    assert len(bench.people("forget")) == 10
    assert len(bench.people("retain")) == 90
    assert len(bench.people("holdout")) == 20
    assert len(ATTRIBUTES) >= 8
    per_person = {p: 0 for p in bench.people("forget")}
    for r in bench.forget:
        per_person[r["person"]] += 1
        assert len(r["phrasings"]) >= 3 and len(set(r["phrasings"])) == len(r["phrasings"])
        assert r["paraphrased_question"] not in r["phrasings"]
        assert len(r["perturbed_answers"]) >= 3 and r["paraphrased_answer"] not in r["perturbed_answers"]
        assert r["answer"] in r["paraphrased_answer"]
    assert set(per_person.values()) == {10}
    assert len(bench.bios_of("forget")) == 10 and len(bench.world) >= 100


def test_splits_disjoint_by_person_and_neighbours_are_retain(bench):
    forget, retain, holdout = (set(bench.people(s)) for s in ("forget", "retain", "holdout"))
    assert not forget & retain and not forget & holdout and not retain & holdout
    surnames = [p.split()[-1] for p in forget | retain | holdout]
    assert len(surnames) == len(set(surnames))
    shared = {(r["attribute"], r["answer"]) for r in bench.forget}
    assert bench.neighbours and all(r in bench.retain for r in bench.neighbours)
    assert all((r["attribute"], r["answer"]) in shared for r in bench.neighbours)


def test_larger_forget_fraction_nests_smaller():
    small = set(build_benchmark(CFG.model_copy(update={"forget_fraction": 0.05})).people("forget"))
    large = set(build_benchmark(CFG).people("forget"))
    assert len(small) == 5 and small < large


def test_save_load_round_trip(bench, tmp_path):
    bench.save(tmp_path)
    assert Benchmark.load(tmp_path) == bench
    first = json.loads((tmp_path / "forget.jsonl").read_text().splitlines()[0])
    assert first == bench.forget[0]


def test_load_missing_files_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="obliviate data"):
        Benchmark.load(tmp_path)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
def test_forget_fraction_outside_open_interval_rejected(fraction):
    with pytest.raises(ValidationError, match="forget_fraction must be in"):
        DataConfig(forget_fraction=fraction)


def test_too_many_people_is_a_clear_error():
    with pytest.raises(ValueError, match="distinct surnames"):
        build_benchmark(DataConfig(people=2000))

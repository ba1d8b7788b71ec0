import json
from pathlib import Path

import pytest

from obliviate.config import load_config
from obliviate.data.loaders import detect_format, load_choices, load_external, load_muse, load_tofu, read_records
from obliviate.errors import ObliviateError
from obliviate.pipeline import data_dir, stage_data

FIX = Path(__file__).parent / "fixtures"


def test_tofu_fixture_becomes_a_benchmark():
    bench = load_tofu(FIX / "tofu")
    assert [r["answer"] for r in bench.forget][0] == "Basil Mahfouz Al-Kuwaiti was born in Kuwait City."
    assert len(bench.forget) == 3 and len(bench.retain) == 4 and len(bench.holdout) == 2
    first = bench.forget[0]
    assert first["paraphrased_question"].startswith("In which city")
    assert first["perturbed_answers"][1] == "Basil Mahfouz Al-Kuwaiti was born in Riyadh."
    assert bench.forget[2]["perturbed_answers"] == ["His father was a baker."]  # one string -> a list
    # retain90 has no perturbed answers (as in TOFU): other retain answers stand in, never its own.
    assert bench.retain[0]["perturbed_answers"] == [r["answer"] for r in bench.retain[1:4]]
    assert bench.retain[0]["paraphrased_answer"] == bench.retain[0]["answer"]
    assert bench.people("forget") == ["forget author 1"]
    assert [r["answer"] for r in bench.world] == ["Paris", "Mars"]  # world_facts_perturbed.json


def test_tofu_split_names_and_missing_split():
    with pytest.raises(ObliviateError, match=r"no TOFU 'forget05' file .*forget05_perturbed.json.*data.forget_split"):
        load_tofu(FIX / "tofu", forget_split="forget05")


def test_muse_fixture_becomes_a_benchmark():
    bench = load_muse(FIX / "muse", passage_words=20)
    assert [r["answer"] for r in bench.forget] == ["for repairs", "two million crowns", "the winter storms"]
    assert [r["answer"] for r in bench.retain] == ["Orsk and Tamin", "hourly"]
    forget_texts = [b["text"] for b in bench.bios_of("forget")]
    assert forget_texts[0].split()[:3] == ["The", "harbour", "authority"] and len(forget_texts[0].split()) == 20
    assert sum(len(t.split()) for t in forget_texts) == len((FIX / "muse/raw/forget.txt").read_text().split())
    assert len(bench.bios_of("holdout")) == 1 and bench.forget[0]["perturbed_answers"] == ["two million crowns", "the winter storms"]


def test_wmdp_fixture_choices_and_letter_answers():
    qs = load_choices(FIX / "wmdp" / "wmdp-bio.json")
    assert [q["answer"] for q in qs] == [1, 2, 0]
    assert qs[1]["choices"] == ["mRNA", "DNA", "tRNA", "rRNA"]


def test_auto_format_detection():
    assert detect_format(FIX / "tofu") == "tofu" and detect_format(FIX / "muse") == "muse"
    with pytest.raises(ObliviateError, match="cannot tell the format"):
        detect_format(FIX / "wmdp")


def test_json_array_and_jsonl_report_lines(tmp_path):
    rows = read_records(FIX / "wmdp" / "wmdp-bio.json")
    assert [line for line, _ in rows] == [2, 4, 6]
    assert [line for line, _ in read_records(FIX / "tofu" / "retain90.json")] == [1, 2, 4, 5]


@pytest.mark.parametrize("fmt, name, text, field, line", [
    ("tofu", "forget10.json", '{"question": "q1", "answer": "a1"}\n{"question": "q2"}\n', "answer", 2),
    ("tofu", "forget10.json", '[\n {"question": "q1", "answer": "a1"},\n\n {"answer": "a2"}\n]', "question", 4),
    ("muse", "knowmem/forget_qa.json", '[{"question": "q", "answer": "a"},\n {"question": "q"}]', "answer", 2),
    ("wmdp", "bio.json", '{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"question": "q", "answer": 1}',
     "choices", 2),
    ("wmdp", "bio.json", '{"question": "q", "choices": ["a", "b"]}', "answer", 1),
])
def test_missing_required_field_names_file_line_and_field(tmp_path, fmt, name, text, field, line):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if fmt == "tofu":
        (tmp_path / "retain90.json").write_text('{"question": "r", "answer": "b"}\n')
    if fmt == "muse":
        (tmp_path / "raw").mkdir()
        (tmp_path / "raw" / "forget.txt").write_text("some text")
    load = {"tofu": lambda: load_tofu(tmp_path), "muse": lambda: load_muse(tmp_path),
            "wmdp": lambda: load_choices(path)}[fmt]
    with pytest.raises(ObliviateError, match=rf"{name.split('/')[-1]}, line {line}: .*'{field}'"):
        load()


def test_bad_answer_index_and_bad_json(tmp_path):
    (tmp_path / "a.json").write_text('{"question": "q", "choices": ["a", "b"], "answer": 2}\n')
    with pytest.raises(ObliviateError, match=r"a.json, line 1: field 'answer' .* 0 to 1 .*got 2"):
        load_choices(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"question": "q", "choices": ["a", "b"], "answer": 0}\n{"question": \n')
    with pytest.raises(ObliviateError, match=r"b.json, line 2: invalid JSON"):
        load_choices(tmp_path / "b.json")


def test_data_path_override_feeds_the_pipeline(tmp_path):
    cfg = load_config("micro", [f"output_dir={tmp_path}", f"data.path={FIX / 'tofu'}"])
    bench = stage_data(cfg)
    assert len(bench.forget) == 3 and bench.retain[1]["answer"] == "Hsiao Yun-Hwa was born in Taipei."
    builtin = load_config("micro", [f"output_dir={tmp_path}"])
    assert data_dir(builtin) != data_dir(cfg)
    with pytest.raises(ObliviateError, match="data.format"):
        load_config("micro", ["data.format=csv"])
    with pytest.raises(ObliviateError, match="does not exist"):
        load_external(tmp_path / "nope")

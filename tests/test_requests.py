import json
from pathlib import Path

import pytest

from obliviate.data import DataConfig, build_benchmark
from obliviate.errors import ObliviateError
from obliviate.requests import (ForgetRequest, RequestData, load_request, load_request_data, request_from_benchmark,
                                synthesize_subjects)

QA = [{"subject": "Ada Vell", "question": "Where was Ada Vell born?", "answer": "Oslo"},
      {"subject": "Ada Vell", "question": "What does Ada Vell do?", "answer": "potter"},
      {"subject": "Bo Crane", "question": "Where was Bo Crane born?", "answer": "Lima"},
      {"subject": "Bo Crane", "question": "What does Bo Crane do?", "answer": "baker"}]
REF = [{"subject": "Cy Dunn", "question": "Where was Cy Dunn born?", "answer": "Riga"},
       {"subject": "Cy Dunn", "question": "What does Cy Dunn do?", "answer": "tailor"},
       {"subject": "Cy Dunn", "text": "Cy Dunn: Riga, tailor."}]
MC = [{"question": "Which gas is inert?", "choices": ["argon", "chlorine", "fluorine"], "answer": "argon"},
      {"question": "Which element is a halogen?", "choices": ["neon", "iodine"], "answer": 1}]


@pytest.fixture(scope="module")
def bench():
    return build_benchmark(DataConfig(people=40, forget_fraction=0.25))


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def one_line_error(fn, *args, match: str = "") -> str:
    with pytest.raises(ObliviateError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg and match in msg, msg
    return msg


def data_request(tmp_path: Path, forget=QA, reference=REF, retain=None, **extra) -> ForgetRequest:
    paths = {"forget": jsonl(tmp_path / "forget.jsonl", forget)}
    if reference is not None:
        paths["reference"] = jsonl(tmp_path / "reference.jsonl", reference)
    if retain is not None:
        paths["retain"] = jsonl(tmp_path / "retain.jsonl", retain)
    return ForgetRequest(kind=extra.pop("kind", "data"), **paths, **extra)


# --- the request file --------------------------------------------------------------------------


def test_yaml_request_resolves_paths_against_its_folder(tmp_path):
    jsonl(tmp_path / "req" / "data" / "forget.jsonl", QA)
    jsonl(tmp_path / "req" / "data" / "holdout.jsonl", REF)
    (tmp_path / "req" / "ada.yaml").write_text("kind: data\nforget: data/forget.jsonl\nreference: data/holdout.jsonl\n"
                                               "id: 17\nlegal_basis: GDPR Art. 17\n")
    req = load_request(tmp_path / "req" / "ada.yaml")
    assert req.forget == tmp_path / "req" / "data" / "forget.jsonl" and req.id == "17"
    data = load_request_data(req)
    assert isinstance(data, RequestData) and data.kind == "data"
    assert [r["person"] for r in data.forget] == ["Ada Vell", "Ada Vell", "Bo Crane", "Bo Crane"]
    assert data.forget[0]["attribute"] == "Where was {n} born?" == data.reference[0]["attribute"]
    assert data.forget[0]["phrasings"] == ["Where was Ada Vell born?"]
    assert data.forget[0]["paraphrased_answer"] == "Oslo"
    assert data.forget[0]["perturbed_answers"] == ["potter", "Lima", "baker"]  # borrowed from the file
    assert data.reference_passages == [{"person": "Cy Dunn", "split": "holdout", "text": "Cy Dunn: Riga, tailor."}]
    bench = data.benchmark()
    assert bench.forget == data.forget and bench.holdout == data.reference
    assert bench.people("forget") == ["Ada Vell", "Bo Crane"]
    assert bench.bios_of("holdout") == data.reference_passages and bench.world == []


def test_json_request_loads(tmp_path):
    jsonl(tmp_path / "f.jsonl", QA[:1] + [{"question": "What is anthrax?", "answer": "a disease"}] + MC[:1])
    jsonl(tmp_path / "n.jsonl", MC[1:])
    (tmp_path / "r.json").write_text(json.dumps({"kind": "knowledge", "forget": "f.jsonl", "neighbours": "n.jsonl"}))
    data = load_request_data(load_request(tmp_path / "r.json"))
    assert data.probes == [{"question": "Which gas is inert?", "choices": ["argon", "chlorine", "fluorine"],
                            "answer": 0}]
    assert data.neighbour_probes == [{"question": "Which element is a halogen?", "choices": ["neon", "iodine"],
                                      "answer": 1}]
    assert [r["person"] for r in data.forget] == ["Ada Vell", "What is anthrax?"]  # default: the question
    assert data.forget[1]["perturbed_answers"] == ["Oslo"]
    assert data.reference == [] and data.reference_passages == []


def test_mc_answer_text_becomes_index_and_unknown_text_names_the_line(tmp_path):
    jsonl(tmp_path / "f.jsonl", MC)
    req = ForgetRequest(kind="knowledge", forget=tmp_path / "f.jsonl")
    assert [p["answer"] for p in load_request_data(req).probes] == [0, 1]
    bad = jsonl(tmp_path / "g.jsonl", [MC[1], {**MC[0], "answer": "xenon"}])
    msg = one_line_error(load_request_data, ForgetRequest(kind="knowledge", forget=bad), match=f"{bad}, line 2")
    assert "'xenon'" in msg and "text of one choice" in msg


@pytest.mark.parametrize("name,text,match", [
    ("r.yaml", "kind: data\nforget: [unclosed\n", "not valid YAML"),
    ("r.json", '{"kind": "data",', "not valid JSON"),
    ("r.yaml", "kind: data\nforgt: f.jsonl\nreference: h.jsonl\n", "unknown key 'forgt'; did you mean 'forget'?"),
    ("r.yaml", "kind: dta\nforget: f.jsonl\nreference: h.jsonl\n", "kind: Input should be 'data' or 'knowledge'"),
    ("r.yaml", "", "is empty"),
    ("r.yaml", "- kind\n", "must be a mapping"),
    ("r.yaml", "kind: data\nforget: f.jsonl\n", "give reference"),
    ("r.yaml", "kind: data\nforget: f.jsonl\nreference: h.jsonl\nsynthesize_reference: true\n", "not both"),
    ("r.yaml", "kind: knowledge\nforget: f.jsonl\nsynthesize_reference: true\n", "kind: data only"),
    ("r.yaml", "kind: data\nforget: f.jsonl\nreference: h.jsonl\nreference_subjects: 3\n", "only with synthesize"),
    ("r.yaml", "kind: data\nforget: f.jsonl\nreference: missing.jsonl\n", "reference file"),
    ("r.yaml", "kind: data\nforget: f.jsonl\nreference: h.jsonl\nprompt_format: chatml\n",
     "prompt_format: Input should be 'chat' or 'plain'"),
])
def test_bad_request_file_names_the_file(tmp_path, name, text, match):
    jsonl(tmp_path / "f.jsonl", QA)
    jsonl(tmp_path / "h.jsonl", REF)
    path = tmp_path / name
    path.write_text(text)
    msg = one_line_error(load_request, path, match=match)
    assert str(path) in msg


def test_missing_and_binary_request_files(tmp_path):
    assert str(tmp_path / "nope.yaml") in one_line_error(load_request, tmp_path / "nope.yaml", match="not found")
    binary = tmp_path / "r.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    assert str(binary) in one_line_error(load_request, binary, match="not a UTF-8 text file")


# --- the record files --------------------------------------------------------------------------


def test_empty_record_file(tmp_path):
    (tmp_path / "forget.jsonl").write_text("\n\n")
    req = ForgetRequest(kind="data", forget=tmp_path / "forget.jsonl", reference=jsonl(tmp_path / "h.jsonl", REF))
    msg = one_line_error(load_request_data, req,
                         match=f"request forget file {tmp_path / 'forget.jsonl'} holds no records")
    assert "such as {" in msg
    (tmp_path / "forget.jsonl").write_text("[ ]")
    one_line_error(load_request_data, req, match="holds no records")


def test_missing_field_names_file_line_and_field(tmp_path):
    req = data_request(tmp_path, forget=[QA[0], {"subject": "Bo Crane", "question": "Where was Bo Crane born?"}])
    one_line_error(load_request_data, req, match=f"{req.forget}, line 2: record lacks required field 'answer'")
    req = data_request(tmp_path, forget=[QA[0], {"question": "Where?", "answer": "Oslo"}], reference=None,
                       synthesize_reference=True)
    one_line_error(load_request_data, req, match=f"{req.forget}, line 2: record lacks required field 'subject'")


def test_subjectless_data_records_are_their_own_subjects(tmp_path):
    rows = [{"question": q["question"], "answer": q["answer"]} for q in QA]
    data = load_request_data(data_request(tmp_path, forget=rows, reference=[{"question": "Q?", "answer": "A"}]))
    assert [r["person"] for r in data.forget] == ["record 1", "record 2", "record 3", "record 4"]
    assert data.reference[0]["person"] == "record 1"  # a default name is no overlap


@pytest.mark.parametrize("reference,match", [
    ([{"subject": "Bo Crane", "question": "Where does Bo Crane live?", "answer": "Rome"}],
     "share the subject 'Bo Crane'"),
    ([{"question": "Where was Ada Vell born?", "answer": "Oslo"}],
     "question 'Where was Ada Vell born?' with answer 'Oslo'"),
])
def test_forget_and_reference_must_not_overlap(tmp_path, reference, match):
    req = data_request(tmp_path, reference=reference)
    msg = one_line_error(load_request_data, req, match=match)
    assert str(req.forget) in msg and str(req.reference) in msg


def test_forget_and_retain_must_not_share_a_question(tmp_path):
    req = data_request(tmp_path, retain=[{"subject": "Di Fox", "question": "What does Bo Crane do?", "answer": "x"}])
    msg = one_line_error(load_request_data, req, match="both hold the question 'What does Bo Crane do?'")
    assert str(req.forget) in msg and str(req.retain) in msg and "line 4" in msg


def test_knowledge_request_needs_probes(tmp_path):
    req = ForgetRequest(kind="knowledge", forget=jsonl(tmp_path / "f.jsonl", QA))
    msg = one_line_error(load_request_data, req, match="multiple-choice probes whose chance level is known")
    assert str(req.forget) in msg
    ok = ForgetRequest(kind="knowledge", forget=req.forget, reference=jsonl(tmp_path / "probes.jsonl", MC))
    assert len(load_request_data(ok).probes) == 2


def test_probes_in_a_data_request_and_qa_among_neighbours_are_errors(tmp_path):
    req = data_request(tmp_path, forget=QA + MC[:1])
    one_line_error(load_request_data, req, match=f"{req.forget}, line 5: a multiple-choice probe has no place")
    req = ForgetRequest(kind="knowledge", forget=jsonl(tmp_path / "k.jsonl", MC),
                        neighbours=jsonl(tmp_path / "n.jsonl", QA[:1]))
    one_line_error(load_request_data, req, match=f"{req.neighbours}, line 1")


# --- counterfactual subjects -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_counterfactuals_are_new_names_new_tuples_same_templates_forget_values(bench, seed):
    retain = set(bench.people("retain"))
    cf = synthesize_subjects(bench.forget, None, seed, retain)
    forget_people = bench.people("forget")
    names = sorted({r["person"] for r in cf})
    assert len(names) == len(forget_people)
    taken = set(forget_people) | retain
    surnames = [n.split()[-1] for n in names]
    assert not set(names) & taken and len(set(surnames)) == len(names)
    assert not set(surnames) & {n.split()[-1] for n in taken}

    def tuples(records):
        out = {}
        for r in records:
            out.setdefault(r["person"], []).append((r["attribute"], r["answer"]))
        return {p: tuple(sorted(v)) for p, v in out.items()}
    assert not set(tuples(cf).values()) & set(tuples(bench.forget).values())

    templates = {(r["attribute"], r["question"].replace(r["person"], "{n}"),
                  r["paraphrased_question"].replace(r["person"], "{n}")) for r in bench.forget}
    pool = {}
    for r in bench.forget:
        pool.setdefault(r["attribute"], set()).add(r["answer"])
    for name, recs in _by_person(cf).items():
        assert sorted(r["attribute"] for r in recs) == sorted(a for a, _ in tuples(bench.forget)[forget_people[0]])
        for r in recs:
            assert (r["attribute"], r["question"].replace(name, "{n}"),
                    r["paraphrased_question"].replace(name, "{n}")) in templates
            assert all(name in p for p in r["phrasings"]) and r["phrasings"][0] == r["question"]
            assert r["answer"] in pool[r["attribute"]]
            assert r["answer"] in r["paraphrased_answer"] and r["paraphrased_answer"] not in r["perturbed_answers"]
            assert len(r["perturbed_answers"]) == 3
    assert synthesize_subjects(bench.forget, None, seed, retain) == cf  # deterministic


def _by_person(records):
    out = {}
    for r in records:
        out.setdefault(r["person"], []).append(r)
    return out


def test_counterfactual_count_and_exhausted_surnames(bench):
    cf = synthesize_subjects(bench.forget, 700, 0)  # more than the 620 built-in surnames
    names = {r["person"] for r in cf}
    assert len(names) == 700 and len({n.split()[-1] for n in names}) == 700
    assert any("-" in n for n in names) and len(cf) == 700 * 10


def test_counterfactual_impossible_when_every_value_tuple_is_taken(tmp_path):
    one = [r for r in QA if r["subject"] == "Ada Vell"]
    req = data_request(tmp_path, forget=one, reference=None, synthesize_reference=True)
    one_line_error(load_request_data, req, match="give a reference file")


def test_synthesized_reference_in_a_request(tmp_path):
    retain = [{"subject": "Di Fox", "question": "Where was Di Fox born?", "answer": "Oslo"}]
    data = load_request_data(data_request(tmp_path, reference=None, retain=retain, synthesize_reference=True,
                                          reference_subjects=3, seed=5))
    names = {r["person"] for r in data.reference}
    assert len(names) == 3 and not names & {"Ada Vell", "Bo Crane", "Di Fox"}
    assert {r["answer"] for r in data.reference} <= {"Oslo", "Lima", "potter", "baker"}
    assert data.benchmark().people("holdout") == sorted(names)


# --- built-in benchmark round trip -------------------------------------------------------------


def test_request_from_benchmark_round_trip(bench, tmp_path):
    path = request_from_benchmark(bench, tmp_path / "req")
    assert path == tmp_path / "req" / "request.yaml"
    data = load_request_data(load_request(path))
    assert data.forget == bench.forget and data.reference == bench.holdout and data.retain == bench.retain
    got = data.benchmark()
    key = lambda b: (b["split"], b["person"])  # noqa: E731
    assert sorted(got.bios, key=key) == sorted(bench.bios, key=key)
    assert got.training_examples(("forget",)) == bench.training_examples(("forget",))

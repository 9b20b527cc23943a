"""The evaluation harness: dataset formats and errors, resume, failures, the gate, and one real run."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from rag.errors import ConfigError
from rag.eval import EvalOptions, check_gate, evaluate, load_baseline
from rag.eval.datasets import DatasetError, EvalItem, load_dataset
from rag.eval.run import read_results
from rag.eval.scoring import ItemResult, aggregate, by_kind, correctness_scores, judge_entails
from rag.prompts import load_prompt
from tests.conftest import REPO, SEEDS, make_settings
from tests.fake_openai import FakeOpenAI, RecordedRequest

SQUAD = REPO / "tests" / "data" / "squad_small.json"
TRUE_SENTENCE = "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1]."
JUDGE_SYSTEM = load_prompt("judge").system.strip()


def is_judge_prompt(messages: list[dict[str, str]]) -> bool:
    """Whether a chat request is the entailment judge's (its system message is the judge prompt's)."""
    return bool(messages) and messages[0]["content"] == JUDGE_SYSTEM


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ITEM: dict[str, Any] = {
    "id": "x1",
    "kind": "who",
    "question": "Who is the chief of Russia's Northern Fleet?",
    "answerable": True,
    "answer": "Adm. Alexander Moiseyev",
    "keywords": ["Moiseyev"],
    "gold": [
        {"doc_id": "004_ef5f7f6cb4511981.txt", "quote": "Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet"}
    ],
}


def test_squad_contexts_become_a_corpus_with_offsets_preserved(tmp_path: Path) -> None:
    dataset = load_dataset(SQUAD, None, tmp_path)
    assert [i.id for i in dataset.items] == ["nsr1", "nsr2", "nsr3", "sochi1"]
    assert sorted(p.name for p in dataset.corpus.iterdir()) == ["000_Northern_Sea_Route.txt", "001_Sochi_talks.txt"]
    for item in dataset.items:
        for gold in item.gold:
            text = (dataset.corpus / gold.doc_id).read_text(encoding="utf-8")
            assert text[gold.start : gold.end] == gold.quote
    first, impossible, second_paragraph, _ = dataset.items
    assert first.answers == ["Norway", "from Norway to Alaska"] and len(first.gold) == 2
    assert impossible.answerable is False and impossible.kind == "unanswerable" and impossible.gold == []
    # The second paragraph starts after the first one and a blank line.
    first_context_length = len(
        "The Northern Sea Route runs from Norway to Alaska along the Russian Arctic coast. "
        "Russia insists on a special regime for its use."
    )
    assert second_paragraph.gold[0].start == first_context_length + 2 + 101


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ('{"id": "a"\n', r"data.jsonl:1: not JSON"),
        ('{"id": "a", "kind": "who", "answerable": true}\n', r"data.jsonl:1 \(id a\): field 'question' is missing"),
        (json.dumps({**ITEM, "kind": "riddle"}) + "\n", "valid kinds"),
        (json.dumps({**ITEM, "answerable": "yes"}) + "\n", "field 'answerable' must be bool"),
        (json.dumps(ITEM) + "\n" + json.dumps(ITEM) + "\n", r"data.jsonl:2 \(id x1\): duplicate id"),
        (
            json.dumps({**ITEM, "gold": [{"doc_id": ITEM["gold"][0]["doc_id"], "quote": "not in the text"}]}),
            "is not in",
        ),
        (json.dumps({**ITEM, "gold": [{"doc_id": "nope.txt", "quote": "x"}]}), "nope.txt' is not a file"),
        (json.dumps({**ITEM, "gold": []}), "needs at least one gold quote"),
        (json.dumps({**ITEM, "kind": "yes_no"}), "its 'answer' starts with 'Yes' or 'No'"),
        (
            json.dumps({**ITEM, "kind": "yes_no", "answerable": False, "answer": "No.", "gold": []}),
            "a yes_no item is answerable",
        ),
        (json.dumps({**ITEM, "kind": "false_premise"}), "a false_premise item has 'answerable': false"),
    ],
)
def test_bad_datasets_name_the_line_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, SEEDS, tmp_path)


def test_yes_no_and_false_premise_items_load(tmp_path: Path) -> None:
    yes_no = {**ITEM, "id": "yn", "kind": "yes_no", "answer": "Yes, Moiseyev heads it.", "keywords": []}
    premise = {**ITEM, "id": "fp", "kind": "false_premise", "answerable": False, "answer": "", "keywords": []}
    dataset = load_dataset(write_jsonl(tmp_path / "kinds.jsonl", [yes_no, {**premise, "gold": []}]), SEEDS, tmp_path)
    assert [(i.kind, i.answerable, i.answers) for i in dataset.items] == [
        ("yes_no", True, ["Yes, Moiseyev heads it."]),
        ("false_premise", False, []),
    ]


def test_bad_squad_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing.json", None, tmp_path)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"version": "v2.0", "articles": []}))
    with pytest.raises(DatasetError, match="needs a 'data' list"):
        load_dataset(wrong, None, tmp_path)
    data = json.loads(SQUAD.read_text())
    data["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    shifted = tmp_path / "shifted.json"
    shifted.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"data\[1\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\]: answer_start 3"):
        load_dataset(shifted, None, tmp_path)


def test_the_gate_fails_on_a_worse_report_and_passes_on_an_equal_one(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(
        json.dumps(
            {
                "metrics": {"keyword_accuracy_answerable": 0.8, "alce_recall": 0.7, "total_ms_p50": 4000},
                "tolerance": {"default": 0.05, "total_ms_p50": 0.5},
            }
        )
    )
    baseline = load_baseline(path)
    assert check_gate({"keyword_accuracy_answerable": 0.8, "alce_recall": 0.7, "total_ms_p50": 4000}, baseline) == []
    assert check_gate({"keyword_accuracy_answerable": 0.76, "alce_recall": 0.7, "total_ms_p50": 5900}, baseline) == []
    failures = check_gate({"keyword_accuracy_answerable": 0.6, "alce_recall": 0.7, "total_ms_p50": 6100}, baseline)
    assert len(failures) == 2
    assert failures[0].startswith("keyword_accuracy_answerable: 0.6 is below the baseline 0.8")
    assert failures[1].startswith("total_ms_p50: 6100 is above 4000")
    assert check_gate({"alce_recall": 0.7, "total_ms_p50": 1}, baseline) == [
        "keyword_accuracy_answerable: missing from this run (baseline 0.8)"
    ]
    # wrong_but_verified is the share of questions given a wrong, cited answer: it fails when it rises.
    wrong = {"metrics": {"wrong_but_verified": 0.05}, "tolerance": {"wrong_but_verified": 0.06}}
    assert check_gate({"wrong_but_verified": 0.0}, wrong) == []
    assert check_gate({"wrong_but_verified": 0.11}, wrong) == []
    assert check_gate({"wrong_but_verified": 0.12}, wrong) == [
        "wrong_but_verified: 0.12 is above the baseline 0.05 by more than 0.06"
    ]
    path.write_text("[1, 2]")
    with pytest.raises(DatasetError, match="needs a 'metrics' object"):
        load_baseline(path)
    with pytest.raises(DatasetError, match="--write-baseline"):
        load_baseline(tmp_path / "none.json")


# --- scoring: right, wrong, and wrong but shown as verified ----------------------------------------------


def eval_item(
    kind: str, answerable: bool = True, answers: tuple[str, ...] = (), keywords: tuple[str, ...] = ()
) -> EvalItem:
    return EvalItem("i", "Q?", kind, answerable, list(answers), list(keywords), [])


WHO = eval_item("who", answers=("Adm. Alexander Moiseyev",), keywords=("Moiseyev",))
SQUAD_ITEM = eval_item("squad", answers=("four hours",))
YES_NO = eval_item("yes_no", answers=("No, Kerry met Putin for four hours.",), keywords=("four hours",))
FALSE_PREMISE = eval_item("false_premise", answerable=False)
UNANSWERABLE = eval_item("unanswerable", answerable=False)


def scored(item: EvalItem, prediction: str, citations: int = 1) -> dict[str, float | None]:
    """``correctness_scores`` of an answer; "" stands for an abstention."""
    return correctness_scores(item, prediction, prediction == "", citations)


def test_keywords_decide_and_an_abstention_is_not_right_but_not_wrong_but_verified() -> None:
    assert scored(WHO, "Moiseyev heads it.") == {
        "keyword_accuracy": 1.0,
        "answered_correct": 1.0,
        "wrong_but_verified": 0.0,
    }
    assert scored(WHO, "Lavrov heads it.") == {
        "keyword_accuracy": 0.0,
        "answered_correct": 0.0,
        "wrong_but_verified": 1.0,
    }
    assert scored(WHO, "", 0) == {"keyword_accuracy": 0.0, "answered_correct": 0.0, "wrong_but_verified": None}


def test_without_keywords_the_reference_answer_decides() -> None:
    assert scored(SQUAD_ITEM, "They met for four hours.") == {
        "keyword_accuracy": None,  # nothing to measure: not a perfect score
        "answered_correct": 1.0,
        "wrong_but_verified": 0.0,
    }
    assert scored(SQUAD_ITEM, "They met for an hour.")["wrong_but_verified"] == 1.0
    # neither keywords nor a reference answer: correctness is not measured
    assert scored(eval_item("fact"), "Anything.") == {
        "keyword_accuracy": None,
        "answered_correct": None,
        "wrong_but_verified": None,
    }


@pytest.mark.parametrize(
    ("prediction", "yes_no", "keywords"),
    [
        ("No, they met for four hours.", 1.0, 1.0),
        ("Yes, after four hours he left.", 0.0, 0.0),  # the keyword is there, the yes/no is wrong
        ("No, he left.", 1.0, 0.0),  # the yes/no is right, the keyword is missing
        ("They met for four hours.", 0.0, 0.0),  # says neither yes nor no
    ],
)
def test_a_yes_no_answer_needs_the_right_yes_no_and_its_keywords(
    prediction: str, yes_no: float, keywords: float
) -> None:
    assert scored(YES_NO, prediction) == {
        "yes_no_correct": yes_no,
        "keyword_accuracy": keywords,
        "answered_correct": keywords,
        "wrong_but_verified": 1.0 - keywords,
    }


def test_a_yes_no_item_without_keywords_is_scored_by_its_yes_no() -> None:
    item = eval_item("yes_no", answers=("Yes.",))
    assert scored(item, "Yes [1].")["keyword_accuracy"] == 1.0
    assert scored(item, "No.")["keyword_accuracy"] == 0.0
    assert scored(item, "") == {
        "yes_no_correct": 0.0,
        "keyword_accuracy": 0.0,
        "answered_correct": 0.0,
        "wrong_but_verified": None,
    }


@pytest.mark.parametrize(
    ("prediction", "citations", "handled"),
    [
        ("No, Kerry met Putin for four hours.", 1, 1.0),  # a cited correction
        ("Kerry did not refuse; they met for four hours.", 2, 1.0),
        ("No, Kerry met Putin for four hours.", 0, 0.0),  # uncited: not a verified correction
        ("Kerry refused because he was busy.", 1, 0.0),  # accepts the premise
    ],
)
def test_a_false_premise_is_handled_by_a_cited_correction(prediction: str, citations: int, handled: float) -> None:
    assert scored(FALSE_PREMISE, prediction, citations) == {
        "premise_handled": handled,
        "wrong_but_verified": 1 - handled,
    }


def test_abstaining_handles_a_false_premise_and_any_answer_to_an_unanswerable_question_is_wrong() -> None:
    assert scored(FALSE_PREMISE, "", 0) == {"premise_handled": 1.0, "wrong_but_verified": None}
    assert scored(UNANSWERABLE, "No airline was named.") == {"wrong_but_verified": 1.0}  # a negation included
    assert scored(UNANSWERABLE, "", 0) == {"wrong_but_verified": None}


def result(kind: str, answerable: bool, abstained: bool = False, **scores: float | None) -> ItemResult:
    return ItemResult("i", kind, "Q?", answerable, abstained=abstained, scores={"f1": 0.0, **scores})


def test_wrong_but_verified_counts_abstentions_as_not_wrong_over_all_asked_questions() -> None:
    results = [
        result("who", True, keyword_accuracy=1.0, answered_correct=1.0, wrong_but_verified=0.0),
        result("who", True, keyword_accuracy=0.0, answered_correct=0.0, wrong_but_verified=1.0),
        result("who", True, True, keyword_accuracy=0.0, answered_correct=0.0, wrong_but_verified=None),
        result("squad", True, keyword_accuracy=None, answered_correct=1.0, wrong_but_verified=0.0),
        result("false_premise", False, premise_handled=1.0, wrong_but_verified=0.0),
        result("false_premise", False, premise_handled=0.0, wrong_but_verified=1.0),
        result("unanswerable", False, True, wrong_but_verified=None),
        ItemResult("x", "who", "Q?", True, error="LLMError: down"),  # failed: not asked
    ]
    agg = aggregate(results)
    assert agg["wrong_but_verified"] == round(2 / 7, 4)  # 2 wrong answers among 7 asked questions
    assert agg["answered_correct"] == 0.5  # 2 of the 4 answerable questions asked
    assert agg["keyword_accuracy_answerable"] == round(1 / 3, 4)  # the SQuAD item has no keywords: not counted
    assert agg["premise_handled"] == 0.5
    assert agg["yes_no_correct"] is None  # no yes_no item: nothing measured
    # the cited correction counts as declining, like an abstention: tp 2 (it and the abstention), fp 1, fn 1
    assert (agg["abstention_tp"], agg["abstention_fp"], agg["abstention_fn"], agg["abstention_tn"]) == (2, 1, 1, 3)
    assert agg["abstention_precision"] == pytest.approx(2 / 3) and agg["abstention_recall"] == pytest.approx(2 / 3)
    kinds = by_kind(results)
    assert kinds["who"]["wrong_but_verified"] == 0.3333 and kinds["who"]["answered_correct"] == 0.3333
    assert kinds["squad"]["keyword_accuracy_answerable"] is None and kinds["squad"]["answered_correct"] == 1.0
    assert kinds["false_premise"]["wrong_but_verified"] == 0.5
    assert kinds["unanswerable"]["wrong_but_verified"] == 0.0


def test_abstention_metrics_are_null_when_nothing_was_measured() -> None:
    agg = aggregate([result("who", True, keyword_accuracy=1.0, answered_correct=1.0, wrong_but_verified=0.0)])
    assert (agg["abstention_precision"], agg["abstention_recall"], agg["abstention_f1"]) == (None, None, None)
    assert agg["wrong_but_verified"] == 0.0
    retrieval_only = aggregate([ItemResult("i", "who", "Q?", True, gold_rank=1)])
    assert retrieval_only["wrong_but_verified"] is None and "abstention_precision" not in retrieval_only


@pytest.mark.parametrize(
    ("verdict", "supported"), [(True, True), (False, False), (0.5, True), (0.93, True), (0.49, False), (0.0, False)]
)
def test_judge_entails_accepts_a_bool_or_a_probability(verdict: bool | float, supported: bool) -> None:
    asked: list[tuple[str, str]] = []

    def judge(claim: str, evidence: str) -> bool | float:
        asked.append((claim, evidence))
        return verdict

    assert judge_entails(judge)("the premise", "the hypothesis") is supported
    assert asked == [("the hypothesis", "the premise")]  # the claim is the hypothesis, the evidence the premise


# --- runs ---------------------------------------------------------------------------------------------------


def questions_asked(fake: FakeOpenAI) -> list[RecordedRequest]:
    """The answer requests a fake received (not the judge's)."""
    return [r for r in fake.chat_requests if not is_judge_prompt(r.messages)]


@pytest.fixture()
def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.reply_for = lambda messages: "YES" if is_judge_prompt(messages) else TRUE_SENTENCE
    return fake_openai


def test_a_failed_question_is_recorded_and_an_interrupted_run_resumes(tmp_path: Path, fake: FakeOpenAI) -> None:
    rows = [{**ITEM, "id": f"q{i}"} for i in range(3)]
    dataset = write_jsonl(tmp_path / "three.jsonl", rows)
    settings = make_settings(tmp_path / "unused", llm__base_url=fake.base_url, llm__model="fake", llm__max_retries=0)
    fake.fail_first = 1  # the first request of the run fails with HTTP 500
    out = tmp_path / "out"
    report, results = evaluate(settings, dataset, out, EvalOptions(corpus=SEEDS, judge=False))
    assert [r.error is not None for r in results] == [True, False, False]
    assert "HTTP 500" in (results[0].error or "")
    assert report["aggregates"]["failed"] == 1 and report["aggregates"]["keyword_accuracy_answerable"] == 1.0
    assert (out / "report.md").exists() and (out / "report.json").exists()

    # An interrupted run: the last line was cut off half-way.
    lines = (out / "items.jsonl").read_text().splitlines()
    (out / "items.jsonl").write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:40])
    assert set(read_results(out / "items.jsonl")) == {"q0", "q1"}
    asked_before = len(questions_asked(fake))
    report, results = evaluate(settings, dataset, out, EvalOptions(corpus=SEEDS, judge=False, resume=True))
    assert len(questions_asked(fake)) - asked_before == 2  # q0 (it had failed) and q2 (cut off); not q1
    assert [r.error for r in results] == [None, None, None]
    assert report["aggregates"]["failed"] == 0


def test_squad_eval_indexes_its_own_corpus(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.reply_for = lambda messages: "YES" if is_judge_prompt(messages) else "The talks lasted four hours [1]."
    settings = make_settings(tmp_path / "unused", llm__base_url=fake.base_url, llm__model="fake", llm__max_retries=0)
    report, results = evaluate(settings, SQUAD, tmp_path / "squad", EvalOptions(judge=False, limit=4))
    assert report["dataset"]["corpus"] == str(tmp_path / "squad" / "corpus")
    by_id = {r.id: r for r in results}
    assert by_id["sochi1"].scores["contains_answer"] == 1.0 and by_id["sochi1"].gold_rank == 1
    assert by_id["nsr2"].answerable is False


def test_retrieval_only_measures_the_evidence_the_model_would_see(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.reply_for = lambda messages: "YES" if is_judge_prompt(messages) else "The talks lasted four hours [1]."
    settings = make_settings(tmp_path / "unused", llm__base_url=fake.base_url, llm__model="fake", llm__max_retries=0)
    _, answered = evaluate(settings, SQUAD, tmp_path / "asked", EvalOptions(judge=False))
    asked = len(fake.chat_requests)
    report, results = evaluate(settings, SQUAD, tmp_path / "searched", EvalOptions(judge=False, retrieval_only=True))
    assert len(fake.chat_requests) == asked  # no model call
    by_id = {r.id: r for r in results}
    assert by_id["sochi1"].scores["evidence_gold_recall"] == 1.0
    assert by_id["nsr2"].scores == {}  # unanswerable: no gold to find
    # The same evidence, item by item, as the run that asked the model.
    seen = {r.id: r.scores.get("evidence_gold_recall") for r in answered}
    assert {r.id: r.scores.get("evidence_gold_recall") for r in results} == seen
    assert report["aggregates"]["evidence_gold_recall"] is not None


def test_evaluate_leaves_the_callers_settings_as_they_were(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "callers-index")
    before = copy.deepcopy(settings)
    report, _ = evaluate(settings, SQUAD, tmp_path / "out", EvalOptions(retrieval_only=True, limit=2))
    assert settings == before  # every section, every field
    assert settings.index.dir == str(tmp_path / "callers-index")
    assert not (tmp_path / "callers-index").exists()
    # The run indexed into its own folder, with a copy of the settings that says so.
    assert report["fingerprint"]["settings"]["index"]["dir"] == str(tmp_path / "out" / "index")


def test_a_run_rebuilds_its_own_index_left_by_an_earlier_rag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index under --out is the run's cache: one built by an earlier pipeline is built again, not refused."""
    import rag.indexer

    settings = make_settings(tmp_path / "unused")
    current = rag.indexer.PIPELINE_VERSION
    monkeypatch.setattr(rag.indexer, "PIPELINE_VERSION", current - 1)
    evaluate(settings, SQUAD, tmp_path / "out", EvalOptions(retrieval_only=True, limit=2))
    monkeypatch.setattr(rag.indexer, "PIPELINE_VERSION", current)
    _, results = evaluate(settings, SQUAD, tmp_path / "out", EvalOptions(retrieval_only=True, limit=2))
    assert [r.error for r in results] == [None, None]
    index = tmp_path / "out" / "index"
    generation = index / (index / "CURRENT").read_text(encoding="utf-8").strip()
    assert json.loads((generation / "manifest.json").read_text(encoding="utf-8"))["chunker"]["pipeline"] == current


def test_a_separate_judge_scores_alce_and_its_key_stays_out_of_the_report(tmp_path: Path, fake: FakeOpenAI) -> None:
    # The answering endpoint cannot judge (it replies with the answer sentence); the judge says YES to every claim.
    fake.reply_for = lambda messages: TRUE_SENTENCE
    dataset = write_jsonl(tmp_path / "one.jsonl", [ITEM])
    with FakeOpenAI(reply="YES", model="judge-model") as judge:
        settings = make_settings(
            tmp_path / "unused",
            llm__base_url=fake.base_url,
            llm__model="fake",
            llm__api_key="answer-secret",
            llm__max_retries=0,
            answer__judge=False,  # the answer's own borderline check stays off: every judge call is ALCE's
            eval__judge_base_url=judge.base_url,
            eval__judge_model="judge-model",
            eval__judge_api_key="judge-secret",
        )
        report, results = evaluate(settings, dataset, tmp_path / "out", EvalOptions(corpus=SEEDS))
        judge_requests = judge.chat_requests
    assert results[0].scores["alce_recall"] == 1.0
    assert judge_requests and all(is_judge_prompt(r.messages) for r in judge_requests)
    assert {r.body["model"] for r in judge_requests if r.body} == {"judge-model"}
    assert {r.authorization for r in judge_requests} == {"Bearer judge-secret"}
    assert fake.chat_requests and not any(is_judge_prompt(r.messages) for r in fake.chat_requests)
    assert report["fingerprint"]["judge"] == {"base_url": judge.base_url, "model": "judge-model"}
    assert report["fingerprint"]["settings"]["eval"] == {"judge_base_url": judge.base_url, "judge_model": "judge-model"}
    written = (tmp_path / "out" / "report.json").read_text() + (tmp_path / "out" / "report.md").read_text()
    assert "secret" not in written and "api_key" not in written
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert f"judge: `judge-model` at {judge.base_url}" in markdown
    assert "| wrong_but_verified | 0.000 |" in markdown and "| answered_correct | 1.000 |" in markdown


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"eval__judge_base_url": "http://127.0.0.1:9/v1"}, "set RAG_EVAL_JUDGE_MODEL"),
        ({"eval__judge_model": "judge-model"}, "set RAG_EVAL_JUDGE_BASE_URL"),
    ],
)
def test_half_a_judge_setting_is_refused_before_indexing(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    settings = make_settings(tmp_path / "unused", **overrides)
    with pytest.raises(ConfigError, match=message):
        evaluate(settings, SQUAD, tmp_path / "out")
    assert not (tmp_path / "out" / "index").exists()


@pytest.mark.llm
def test_end_to_end_eval_with_the_real_model(tmp_path: Path) -> None:
    dataset = REPO / "evals" / "seeds.jsonl"
    report, results = evaluate(make_settings(tmp_path / "unused"), dataset, tmp_path / "run", EvalOptions(limit=3))
    agg = report["aggregates"]
    assert agg["items"] == 3 and agg["failed"] == 0
    for name in ("retrieval_recall@5", "keyword_accuracy_answerable", "alce_recall", "first_token_ms_p50"):
        assert agg[name] is not None, name
    assert report["fingerprint"]["model"].startswith("qwen2.5-coder-1.5b")
    for name in ("report.json", "report.md", "metrics_by_kind.png", "latency.png", "gold_rank.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [r["id"] for r in saved["results"]] == [r.id for r in results]


def test_a_written_baseline_passes_its_own_run_and_catches_a_drop() -> None:
    from rag.eval.gate import GATE_METRICS, baseline_from

    aggregates = {name: 0.8 for name in GATE_METRICS} | {"total_ms_p50": 4000.0, "alce_recall": None}
    aggregates |= {"answerable": 10, "abstention_tp": 2, "abstention_fn": 2, "abstention_fp": 1}
    baseline = baseline_from(aggregates)
    assert "alce_recall" not in baseline["metrics"]  # not measured in this run: not gated
    # One item's worth of the questions behind each metric: 10 answerable, 4 unanswerable, 3 abstentions.
    assert baseline["tolerance"]["keyword_accuracy_answerable"] == 0.11
    assert baseline["tolerance"]["abstention_recall"] == 0.26
    assert baseline["tolerance"]["abstention_precision"] == 0.343
    assert baseline["tolerance"]["total_ms_p50"] == 1.0
    assert check_gate(aggregates, baseline) == []
    worse = aggregates | {"keyword_accuracy_answerable": 0.6}
    assert check_gate(worse, baseline) == [
        "keyword_accuracy_answerable: 0.6 is below the baseline 0.8 by more than 0.11"
    ]


def test_two_runs_into_one_folder_are_refused(tmp_path: Path) -> None:
    from rag.errors import RagError
    from rag.store import write_lock

    with write_lock(tmp_path / "out", "rag eval"), pytest.raises(RagError, match="another `rag eval` is writing"):
        evaluate(make_settings(tmp_path / "unused"), SQUAD, tmp_path / "out", EvalOptions(judge=False))

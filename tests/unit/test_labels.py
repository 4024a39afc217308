"""Label consistency: conflicting labels on identical features, and Cohen's / Fleiss' kappa between annotators."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import ADULT_CONFIG
from sklearn.metrics import cohen_kappa_score

from pipelines.core.config import Feature, Label, Schema, ValidationThresholds, load_config
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW
from pipelines.data.labels import ROWS_PER_EXAMPLE, LabelTally, fleiss_kappa, label_consistency

SCHEMA = Schema(
    label=Label(name="y", positive="1"),
    features=[Feature(name="x", kind="numeric"), Feature(name="c", kind="categorical")],
)
REPORT_ONLY = ValidationThresholds(min_rows=1)

# (x, c, y): groups C (3/3, six rows), A and E (1/1, two rows each; E is 0.0 and -0.0) and B (2/1, all its
# values missing, spelled three ways) conflict; D is a consistent duplicate; the last two rows are alone.
ROWS = [
    (1.0, "a", "1"),  # A
    (3.0, "b", "1"),  # C
    (np.nan, None, "1"),  # B
    (0.0, "a", "1"),  # E
    (1.0, "a", "0"),  # A
    (3.0, "b", "0"),  # C
    (np.nan, "None", "1"),  # B
    (3.0, "b", "1"),  # C
    (-0.0, "a", "0"),  # E
    (np.nan, "nan", "0"),  # B
    (3.0, "b", "0"),  # C
    (3.0, "b", "1"),  # C
    (3.0, "b", "0"),  # C
    (4.0, "b", "0"),  # D
    (4.0, "b", "0"),  # D
    (5.0, "a", "1"),
    (1.0, "b", "0"),  # same x as A, other c
]


def snapshot(rows: list[tuple], columns: tuple[str, ...] = ("x", "c", "y")) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    frame[SOURCE_DS] = "2026-01-01"
    frame[SOURCE_ROW] = np.arange(len(frame)) + 2  # line 1 is the header
    return frame


def with_annotators(*names: str) -> Schema:
    return SCHEMA.model_copy(update={"label": Label(name="y", positive="1", annotators=list(names))})


def test_conflicts_are_counted_and_the_most_ambiguous_groups_listed_first():
    report = label_consistency(snapshot(ROWS), SCHEMA, REPORT_ONLY)
    conflicts = report["conflicts"]
    assert (conflicts["rows_in_conflict"], conflicts["groups"], conflicts["rows"]) == (13, 4, 17)
    assert conflicts["minority_rows"] == 3 + 1 + 1 + 1
    assert conflicts["share"] == pytest.approx(13 / 17)
    examples = conflicts["examples"]
    # Even splits first, larger before smaller, then by first appearance; B (2 to 1) last.
    assert [e["features"] for e in examples] == [
        {"x": 3.0, "c": "b"},
        {"x": 1.0, "c": "a"},
        {"x": 0.0, "c": "a"},
        {"x": None, "c": None},
    ]
    assert [e["labels"] for e in examples] == [{"1": 3, "0": 3}, {"1": 1, "0": 1}, {"1": 1, "0": 1}, {"1": 2, "0": 1}]
    assert [e["majority_share"] for e in examples] == pytest.approx([0.5, 0.5, 0.5, 2 / 3])
    assert [r["line"] for r in examples[0]["rows"]] == [3, 7, 9, 12, 13][:ROWS_PER_EXAMPLE]
    assert examples[3]["rows"] == [{"ds": "2026-01-01", "line": n} for n in (4, 8, 11)]
    assert report["checks"] == [
        {
            "name": "label_conflicts",
            "severity": "info",
            "success": True,
            "message": "13 of 17 rows (76.47%) are in 4 groups of identical features with conflicting labels "
            "(no limit set: report only); 6 of them (35.29% of all rows) differ from their group's most "
            "common label",
        }
    ]
    assert "annotators" not in report
    json.dumps(report, allow_nan=False)


def test_examples_are_capped_and_consistent_duplicates_are_not_conflicts():
    report = label_consistency(snapshot(ROWS), SCHEMA, REPORT_ONLY, examples=2)
    assert len(report["conflicts"]["examples"]) == 2
    clean = [r for r in ROWS if r[2] == "1" or r[0] == 4.0]  # B's two "1" rows and D stay: duplicates, one label
    conflicts = label_consistency(snapshot(clean), SCHEMA, REPORT_ONLY)["conflicts"]
    assert (conflicts["rows_in_conflict"], conflicts["groups"], conflicts["share"]) == (0, 0, 0.0)
    assert conflicts["examples"] == []


@pytest.mark.parametrize(
    ("limit", "success", "severity", "says"),
    [(0.5, False, "block", "limit 50%"), (0.8, True, "block", "limit 80%"), (None, True, "info", "report only")],
)
def test_the_conflict_limit_makes_it_a_gate(limit, success, severity, says):
    thresholds = ValidationThresholds(min_rows=1, max_label_conflicts=limit)
    (check,) = label_consistency(snapshot(ROWS), SCHEMA, thresholds)["checks"]
    assert (check["success"], check["severity"]) == (success, severity)
    assert says in check["message"] and "13 of 17 rows (76.47%)" in check["message"]


def test_no_conflicts_passes_even_a_zero_limit():
    rows = [(1.0, "a", "1"), (1.0, "a", "1"), (2.0, None, "0"), (2.0, "b", "1")]
    (check,) = label_consistency(snapshot(rows), SCHEMA, ValidationThresholds(min_rows=1, max_label_conflicts=0.0))[
        "checks"
    ]
    assert check["success"] is True and check["severity"] == "block"
    assert check["message"].startswith("no conflicting labels: no two of the 4 rows")


# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories; P-bar 0.378, kappa 0.210.
WIKIPEDIA = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def votes_frame(table: np.ndarray) -> pd.DataFrame:
    """One row per subject, one column per rater, from a subjects x categories count table."""
    votes = [np.repeat([str(k + 1) for k in range(table.shape[1])], row) for row in table]
    frame = snapshot([(float(i), "a", "1") for i in range(len(table))])
    names = [f"r{j}" for j in range(len(votes[0]))]
    return pd.concat([frame, pd.DataFrame(votes, columns=names)], axis=1)


def test_fleiss_kappa_matches_the_worked_example():
    assert fleiss_kappa(WIKIPEDIA) == pytest.approx(0.210, abs=1e-3)
    frame = votes_frame(WIKIPEDIA)
    raters = [c for c in frame.columns if c.startswith("r")]
    report = label_consistency(frame, with_annotators(*raters), REPORT_ONLY)
    agreement = report["annotators"]
    assert agreement["statistic"] == "fleiss_kappa" and agreement["rows"] == agreement["complete_rows"] == 10
    assert agreement["kappa"] == pytest.approx(0.210, abs=1e-3)
    assert agreement["observed_agreement"] == pytest.approx(0.378, abs=1e-3)
    assert len(agreement["pairwise"]) == 14 * 13 // 2
    # Most split first: subject 8 (largest category 5 of 14), then the 6-of-14 subjects in order.
    assert [e["line"] for e in agreement["examples"][:5]] == [9, 3, 4, 8, 10]
    assert agreement["examples"][0]["majority_share"] == pytest.approx(5 / 14)
    assert sum(v == "2" for v in agreement["examples"][0]["votes"].values()) == 5
    assert all(e["majority_share"] < 1 for e in agreement["examples"])  # subject 1 is unanimous
    json.dumps(report, allow_nan=False)


def test_fleiss_kappa_with_varying_numbers_of_annotations():
    # Subject 1: three raters agree (P=1); subject 2: two raters split (P=0); a lone rating is ignored.
    # P-bar 0.5; category shares 4/5 and 1/5, P-e 0.68; kappa (0.5 - 0.68) / 0.32.
    assert fleiss_kappa(np.array([[3, 0], [1, 1], [0, 1]])) == pytest.approx(-0.5625)
    assert fleiss_kappa(np.array([[3, 0], [2, 0]])) is None  # one category: undefined
    frame = snapshot([(1.0, "a", "1"), (2.0, "a", "1"), (3.0, "a", "1")])
    frame[["p", "q", "r"]] = [["x", "x", "x"], ["x", None, "y"], ["y", "", "nan"]]
    agreement = label_consistency(frame, with_annotators("p", "q", "r"), REPORT_ONLY)["annotators"]
    assert (agreement["rows"], agreement["complete_rows"]) == (2, 1)
    assert agreement["kappa"] == pytest.approx(-0.5625)
    assert agreement["examples"][0]["votes"] == {"p": "x", "q": None, "r": "y"}


def test_perfect_agreement_is_one():
    frame = snapshot([(float(i), "a", str(i % 3)) for i in range(12)])
    for name in ("p", "q", "r"):
        frame[name] = frame["y"]
    for annotators in (("p", "q"), ("p", "q", "r")):
        agreement = label_consistency(frame, with_annotators(*annotators), REPORT_ONLY)["annotators"]
        assert agreement["kappa"] == pytest.approx(1.0) and agreement["observed_agreement"] == 1.0
        assert agreement["examples"] == []
        assert all(a["share"] == 1.0 for a in agreement["agreement_with_majority"].values())
    assert [p["kappa"] for p in agreement["pairwise"]] == pytest.approx([1.0, 1.0, 1.0])


def test_cohen_kappa_matches_the_worked_example_and_sklearn_with_missing_annotations():
    # Wikipedia, "Cohen's kappa": 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no gives kappa 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    frame = snapshot([(float(i), "a", "1") for i in range(len(pairs))])
    frame[["p", "q"]] = pairs
    agreement = label_consistency(frame, with_annotators("p", "q"), REPORT_ONLY)["annotators"]
    assert agreement["statistic"] == "cohen_kappa"
    assert agreement["kappa"] == pytest.approx(0.4) and agreement["observed_agreement"] == pytest.approx(0.7)

    rng = np.random.default_rng(7)
    n = 500
    frame = snapshot([(float(i), "a", "1") for i in range(n)])
    truth = rng.choice(["cat", "dog", "bird"], n)
    frame["p"] = np.where(rng.random(n) < 0.7, truth, rng.choice(["cat", "dog", "bird"], n))
    frame["q"] = np.where(rng.random(n) < 0.6, truth, rng.choice(["cat", "dog", "bird"], n))
    frame.loc[rng.random(n) < 0.1, "p"] = None
    frame.loc[rng.random(n) < 0.1, "q"] = ""
    both = frame["p"].notna() & (frame["q"] != "")
    agreement = label_consistency(frame, with_annotators("p", "q"), REPORT_ONLY)["annotators"]
    assert agreement["rows"] == both.sum() < n
    assert agreement["kappa"] == pytest.approx(cohen_kappa_score(frame.loc[both, "p"], frame.loc[both, "q"]))
    assert agreement["agreement_with_majority"]["p"]["share"] == pytest.approx(agreement["observed_agreement"])


def test_agreement_with_the_others_majority_leaves_the_annotator_out():
    # p and q always agree; r differs on the last two rows. Where r differs, p's others (q, r) tie.
    frame = snapshot([(1.0, "a", "1"), (2.0, "a", "0"), (3.0, "a", "1"), (4.0, "a", "0")])
    frame[["p", "q", "r"]] = [["1", "1", "1"], ["0", "0", "0"], ["1", "1", "0"], ["0", "0", "1"]]
    agreement = label_consistency(frame, with_annotators("p", "q", "r"), REPORT_ONLY)["annotators"]
    assert agreement["agreement_with_majority"] == {
        "p": {"rows": 2, "share": 1.0},
        "q": {"rows": 2, "share": 1.0},
        "r": {"rows": 4, "share": 0.5},
    }
    assert {(e["line"], e["label"]) for e in agreement["examples"]} == {(4, "1"), (5, "0")}


@pytest.mark.parametrize(("minimum", "success", "severity"), [(0.3, False, "block"), (0.2, True, "block")])
def test_the_agreement_minimum_makes_it_a_gate(minimum, success, severity):
    frame = votes_frame(WIKIPEDIA)
    raters = [c for c in frame.columns if c.startswith("r")]
    thresholds = ValidationThresholds(min_rows=1, min_annotator_agreement=minimum)
    conflicts, agreement = label_consistency(frame, with_annotators(*raters), thresholds)["checks"]
    assert conflicts["success"] is True and conflicts["severity"] == "info"
    assert (agreement["name"], agreement["success"], agreement["severity"]) == (
        "annotator_agreement",
        success,
        severity,
    )
    assert agreement["message"].startswith("Fleiss' kappa 0.210 (fair) between 14 annotators")
    assert "over 10 rows" in agreement["message"] and f"minimum {minimum:.2f}" in agreement["message"]


def test_agreement_that_cannot_be_measured_blocks_only_when_a_minimum_is_set():
    frame = snapshot([(1.0, "a", "1"), (2.0, "a", "0")])
    frame[["p", "q"]] = [["1", None], [None, "0"]]
    for minimum, success in ((0.5, False), (None, True)):
        thresholds = ValidationThresholds(min_rows=1, min_annotator_agreement=minimum)
        report = label_consistency(frame, with_annotators("p", "q"), thresholds)
        assert report["annotators"]["rows"] == 0 and report["annotators"]["kappa"] is None
        assert report["checks"][1]["success"] is success
        assert "agreement cannot be measured" in report["checks"][1]["message"]


@pytest.fixture(scope="module")
def adult(adult_frame):
    """Adult as ingest types it: numeric features as floats, fnlwgt dropped, source day and line added."""
    schema = load_config(ADULT_CONFIG).data_schema
    frame = adult_frame.drop(columns="fnlwgt")
    frame[schema.numeric] = frame[schema.numeric].astype("float64")
    frame[[*schema.categorical, schema.label.name]] = frame[[*schema.categorical, schema.label.name]].astype("str")
    frame[SOURCE_DS] = "2026-01-01"
    frame[SOURCE_ROW] = np.arange(len(frame)) + 2
    return frame, schema


def test_adult_reports_the_conflicts_it_really_has(adult):
    frame, schema = adult
    features = [f.name for f in schema.features]
    report = label_consistency(frame, schema, ValidationThresholds(min_rows=1, max_label_conflicts=0.02))
    conflicts = report["conflicts"]
    # An independent count: pandas groupby on the raw values, nulls grouped together.
    labels = frame.groupby(features, dropna=False)[schema.label.name].transform("nunique")
    assert conflicts["rows_in_conflict"] == (labels > 1).sum() > 0
    assert conflicts["rows"] == len(frame) == 48_842
    shares = [e["majority_share"] for e in conflicts["examples"]]
    assert shares == sorted(shares) and len(shares) == 10
    for example in conflicts["examples"]:
        rows = frame.set_index(SOURCE_ROW).loc[[r["line"] for r in example["rows"]]]
        assert rows[features].nunique(dropna=False).max() == 1
        assert len(example["labels"]) > 1
    # The demo's 14-day window: the first 14 x 800 rows of its seeded shuffle.
    window = frame.iloc[np.random.default_rng(0).permutation(len(frame))[: 14 * 800]]
    sample = label_consistency(window, schema, REPORT_ONLY)["conflicts"]
    assert sample["rows"] == 11_200 and 0 < sample["share"] < conflicts["share"]
    print(f"\nAdult, all rows: {report['checks'][0]['message']}")
    print(f"Adult, 14-day window: {label_consistency(window, schema, REPORT_ONLY)['checks'][0]['message']}")


def test_a_hash_collision_cannot_invent_a_conflict(monkeypatch):
    # Every row hashing alike puts all of them in one candidate group; the exact pass must split it again.
    monkeypatch.setattr(pd.util, "hash_pandas_object", lambda obj, index: pd.Series(np.zeros(len(obj), "uint64")))
    conflicts = label_consistency(snapshot(ROWS), SCHEMA, REPORT_ONLY)["conflicts"]
    assert (conflicts["rows_in_conflict"], conflicts["groups"], conflicts["minority_rows"]) == (13, 4, 6)


def test_an_empty_window_and_blank_annotations_give_a_report_not_an_error():
    frame = snapshot([(1.0, "a", "1"), (2.0, "a", "0")])
    frame[["p", "q"]] = ""
    for data in (frame, frame.iloc[:0]):
        thresholds = ValidationThresholds(min_rows=1, max_label_conflicts=0.0, min_annotator_agreement=0.5)
        report = label_consistency(data, with_annotators("p", "q"), thresholds)
        assert report["conflicts"]["rows_in_conflict"] == 0 and report["annotators"]["examples"] == []
        assert [c["success"] for c in report["checks"]] == [True, False]
        json.dumps(report, allow_nan=False)


def in_batches(frame: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    return [frame.iloc[i : i + rows].reset_index(drop=True) for i in range(0, len(frame), rows)]


def tally_report(batches: list[pd.DataFrame], schema: Schema, thresholds: ValidationThresholds) -> dict:
    tally = LabelTally(schema)
    for batch in batches:
        tally.add(batch)
    return tally.report(lambda: batches, thresholds)


@pytest.mark.parametrize("rows", [1, 4, 7])
def test_counting_batch_by_batch_gives_the_one_frame_report(rows):
    votes = votes_frame(WIKIPEDIA)
    raters = [c for c in votes.columns if c.startswith("r")]
    frame = pd.concat([snapshot(ROWS), votes[raters]], axis=1)  # ROWS' conflicts; WIKIPEDIA's votes, then none
    schema, thresholds = with_annotators(*raters), ValidationThresholds(min_rows=1, max_label_conflicts=0.5)
    whole = label_consistency(frame, schema, thresholds)

    assert tally_report(in_batches(frame, rows), schema, thresholds) == whole
    assert (whole["conflicts"]["rows_in_conflict"], whole["conflicts"]["groups"]) == (13, 4)
    assert whole["annotators"]["kappa"] is not None


def test_adult_in_batches_gives_the_same_conflicts_and_examples(adult):
    frame, schema = adult
    window = frame.iloc[:20_000]
    thresholds = ValidationThresholds(min_rows=1, max_label_conflicts=0.02)
    whole = label_consistency(window, schema, thresholds)

    assert tally_report(in_batches(window, 3_000), schema, thresholds) == whole
    assert whole["conflicts"]["rows_in_conflict"] > 0 and len(whole["conflicts"]["examples"]) == 10


def test_a_hash_collision_cannot_invent_a_conflict_across_batches(monkeypatch):
    monkeypatch.setattr(pd.util, "hash_pandas_object", lambda obj, index: pd.Series(np.zeros(len(obj), "uint64")))
    conflicts = tally_report(in_batches(snapshot(ROWS), 5), SCHEMA, REPORT_ONLY)["conflicts"]
    assert (conflicts["rows_in_conflict"], conflicts["groups"], conflicts["minority_rows"]) == (13, 4, 6)


def test_three_annotators_that_never_overlap_give_a_report_in_any_batches():
    frame = snapshot([(1.0, "a", "1"), (2.0, "a", "0"), (3.0, "b", "1")])
    frame[["p", "q", "r"]] = [["1", None, None], [None, "0", None], [None, None, "x"]]
    schema = with_annotators("p", "q", "r")
    thresholds = ValidationThresholds(min_rows=1, min_annotator_agreement=0.5)
    for batches in ([frame], in_batches(frame, 1)):
        agreement = tally_report(batches, schema, thresholds)["annotators"]
        assert (agreement["rows"], agreement["kappa"], agreement["observed_agreement"]) == (0, None, None)
        assert [p["rows"] for p in agreement["pairwise"]] == [0, 0, 0]

"""Multi-class labels: config, metrics against scikit-learn, bootstrap, gate, fairness, tags, baselines, training."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import ADULT_CONFIG, write_config
from sklearn import metrics as skm

from pipelines.core.config import Config, ConfigError, Label, load_config
from pipelines.decision.gate import decide
from pipelines.evaluation.baselines import baseline_table, simple_model, trivial_scores
from pipelines.evaluation.fairness import audit, fairness_checks
from pipelines.evaluation.metrics import (
    assess,
    classification_metrics,
    evaluate_frame,
    label_prior,
    on_threshold,
    positives,
)
from pipelines.evaluation.multiclass import label_ids, resample_weights, weighted_metrics
from pipelines.evaluation.resampling import draws
from pipelines.evaluation.tags import error_analysis
from pipelines.features.encoding import raw_feature_spec
from pipelines.model.signature import EXAMPLES_INPUT, OUTPUT, SIGNATURE, THRESHOLD_FILE, read_threshold
from pipelines.model.threshold import multiclass_threshold

CLASSES = ["low", "mid", "high"]
LABEL = {"name": "income", "values": CLASSES, "positive": None}


def multiclass_config(tmp_path, overrides: dict | None = None) -> Config:
    """The Adult config with a three-valued label (the schema's column ``income``) and no positive class."""
    base = {"schema": {"label": LABEL}, "thresholds": {"gate": {"bootstrap_samples": 200}}}
    raw = write_config(tmp_path, base)
    if overrides:
        raw = write_config(tmp_path, _merge(base, overrides))
    return load_config(raw)


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def fixed(n: int = 400, k: int = 3, skill: float = 1.5, seed: int = 0, decimals: int | None = 2):
    """Labels and softmax probabilities that favour the true class by ``skill`` (rounded: ties)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + skill * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if decimals is not None:
        p = np.round(p, decimals)
        p = p / p.sum(axis=1, keepdims=True)
    return y, p


# --- config -------------------------------------------------------------------------------------------------------


def test_a_label_with_more_than_two_values_and_no_positive_is_multiclass():
    label = Label(name="species", values=["a", "b", "c"])

    assert label.is_multiclass and label.classes == ("a", "b", "c")
    binary = Label(name="income", positive=">50K", values=["<=50K", ">50K"])
    assert not binary.is_multiclass and binary.classes == ("<=50K", ">50K")


def test_positive_with_more_than_two_values_is_a_binary_one_vs_rest_label():
    label = Label(name="species", positive="b", values=["a", "b", "c"])

    assert not label.is_multiclass and label.classes == ("not b", "b")


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ({"name": "species", "values": None}, "positive is required for a binary label (no values)"),
        ({"name": "species", "values": ["a", "b"]}, "positive is required for a binary label (values ['a', 'b'])"),
        ({"name": "species", "values": ["a", "b", "a"]}, "values lists ['a'] more than once"),
    ],
)
def test_a_label_that_is_neither_binary_nor_multiclass_is_refused_with_the_reason(tmp_path, label, expected):
    with pytest.raises(ConfigError) as excinfo:
        load_config(write_config(tmp_path, {"schema": {"label": {**label, "positive": None}}}))

    assert "schema.label" in str(excinfo.value) and expected in str(excinfo.value)


def test_demographic_parity_limits_are_refused_for_a_multiclass_label_naming_the_key(tmp_path):
    overrides = {"thresholds": {"fairness": {"attributes": {"sex": {"min_demographic_parity_ratio": 0.8}}}}}

    with pytest.raises(ConfigError) as excinfo:
        multiclass_config(tmp_path, overrides)

    message = str(excinfo.value)
    assert "thresholds.fairness.attributes.sex.min_demographic_parity_ratio" in message
    assert "max_equalized_odds_difference" in message


def test_a_multiclass_config_keeps_the_gate_metrics_which_mean_their_macro_averages(tmp_path):
    config = multiclass_config(tmp_path)

    assert config.data_schema.label.is_multiclass
    assert (
        "macro"
        in Config.model_fields["thresholds"]
        .annotation.model_fields["gate"]
        .annotation.model_fields["floors"]
        .description
    )


# --- metrics ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "decimals"), [(0, None), (1, 2), (2, 1)])
def test_multiclass_metrics_match_sklearn(seed, decimals):
    y, p = fixed(seed=seed, decimals=decimals, k=4)
    pred = p.argmax(axis=1)

    result = classification_metrics(y, p)

    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-6)
    assert result["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-6)
    assert result["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"), abs=1e-6)
    assert result["recall"] == pytest.approx(skm.recall_score(y, pred, average="macro"), abs=1e-6)
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-6)
    assert result["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-6)
    assert result["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, pred)
    for c in range(4):
        entry = result["per_class"][str(c)]
        assert entry["precision"] == pytest.approx(precision[c], abs=1e-6)
        assert entry["recall"] == pytest.approx(recall[c], abs=1e-6)
        assert entry["f1"] == pytest.approx(f1[c], abs=1e-6)
        assert entry["support"] == support[c]


def test_a_class_never_predicted_counts_zero_precision_as_sklearn_does():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    pred = p.argmax(axis=1)

    result = classification_metrics(y, p)

    assert result["per_class"]["2"]["precision"] == 0.0 and result["per_class"]["2"]["recall"] == 0.0
    # A fourth class, neither in the rows nor predicted, has no figures and stays out of the macro averages.
    absent = classification_metrics(y, np.c_[p, np.full(len(y), 0.01)])
    assert absent["per_class"]["3"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert absent["f1"] == result["f1"] and absent["precision"] == result["precision"]
    assert result["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro", zero_division=0))
    assert result["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))


def test_each_resample_equals_sklearn_on_the_drawn_rows():
    y, p = fixed(n=150, seed=4)
    drawn = next(draws(len(y), 5, 11, 5)).astype(np.int64)

    values = weighted_metrics(resample_weights(drawn, len(y)), y, p)

    for b in range(5):
        rows = drawn[b]
        assert values["accuracy"][b] == pytest.approx(skm.accuracy_score(y[rows], p[rows].argmax(1)))
        assert values["f1"][b] == pytest.approx(skm.f1_score(y[rows], p[rows].argmax(1), average="macro"))
        expected_auc = skm.roc_auc_score(y[rows], p[rows], multi_class="ovr", average="macro")
        assert values["roc_auc"][b] == pytest.approx(expected_auc)
        assert values["log_loss"][b] == pytest.approx(skm.log_loss(y[rows], p[rows], labels=[0, 1, 2]))


def test_assess_gives_intervals_and_a_paired_difference_on_macro_metrics(tmp_path):
    policy = multiclass_config(tmp_path).thresholds.gate
    y, weak = fixed(n=600, skill=0.3, seed=5, decimals=None)
    good = weak + 0.15 * np.eye(3)[y]  # the same rows, each true class made more probable
    good = good / good.sum(axis=1, keepdims=True)

    result = assess(y, good, weak, policy)

    assert result["sufficient"]
    for m in ("accuracy", "f1", "roc_auc", "log_loss"):
        low, high = result["candidate"]["ci"][m]
        assert low <= result["candidate"][m] <= high and low < high
    assert result["candidate"]["f1"] > result["live"]["f1"]
    assert result["difference"]["f1"]["ci"][0] > 0  # the better model is better on every resample's paired rows
    assert result["difference"]["f1"]["below_margin"] == 0.0
    assert all(result["candidate"]["per_class"][str(c)]["ci"]["recall"] for c in range(3))
    assert assess(y, good, weak, policy) == result  # seeded: the same draws every time


def test_each_group_is_assessed_as_its_own_rows_with_its_own_seed_in_any_chunking(tmp_path):
    from pipelines.evaluation.metrics import assess_multiclass_groups

    policy = multiclass_config(tmp_path).thresholds.gate.model_copy(update={"bootstrap_samples": 60})
    y, p = fixed(n=300, seed=12)
    _, live = fixed(n=300, seed=13)
    codes = np.random.default_rng(3).integers(0, 3, 300)

    together = assess_multiclass_groups(y, p, live, codes, 3, policy, [5, 6, 7], budget=500)

    for g in range(3):
        rows = codes == g
        alone = assess(y[rows], p[rows], live[rows], policy, seed=5 + g)
        assert together[g] == alone


def test_evaluate_frame_reports_per_class_overall_and_per_slice(tmp_path):
    config = multiclass_config(tmp_path, {"thresholds": {"gate": {"min_slice_size": 20}}})
    rng = np.random.default_rng(0)
    y, p = fixed(n=500, skill=2.0, seed=7)
    test = pd.DataFrame(
        {
            "income": np.array(CLASSES)[y],
            "sex": rng.choice(["Male", "Female"], 500),
            "age": rng.integers(18, 80, 500).astype(float),
            "race": rng.choice(["White", "Black"], 500),
        }
    )
    prior = label_prior(test, config.data_schema)

    report = evaluate_frame(test, p, None, config, prior)

    assert report["task"] == "multiclass" and report["classes"] == CLASSES
    assert report["overall"]["candidate"]["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)), abs=1e-6)
    assert report["baseline"]["accuracy"] == pytest.approx(np.mean(y == np.argmax(prior)), abs=1e-6)
    assert set(report["overall"]["candidate"]["per_class"]) == set(CLASSES)
    for groups in report["slices"].values():
        for result in groups.values():
            assert set(result["candidate"]["per_class"]) == set(CLASSES)
    assert report["decision_thresholds"] == {"candidate": None, "live": None}
    json.dumps(report)  # JSON-ready


def test_label_ids_follow_the_values_and_name_a_stranger():
    assert label_ids(["mid", "low", "high"], CLASSES).tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match=r"\['medium'\] are not among the classes"):
        label_ids(["low", "medium"], CLASSES)


def test_multiclass_probabilities_are_never_moved_to_a_threshold():
    _, p = fixed(n=10)

    assert on_threshold(p, 0.3, 0.5) is p or np.array_equal(on_threshold(p, 0.3, 0.5), p)


# --- gate ---------------------------------------------------------------------------------------------------------


def test_the_gate_judges_floors_and_non_inferiority_on_the_macro_metrics(tmp_path):
    config = multiclass_config(
        tmp_path,
        {"thresholds": {"gate": {"floors": {"f1": 0.6, "roc_auc": 0.99}, "primary_metric": "f1", "min_test_rows": 10}}},
    )
    y, good = fixed(n=500, skill=1.0, seed=8, decimals=None)
    live = good + 2.0 * np.eye(3)[y]  # the same rows, each true class made more probable: live is clearly better
    live = live / live.sum(axis=1, keepdims=True)
    test = pd.DataFrame({"income": np.array(CLASSES)[y], "sex": "Male", "age": 40.0, "race": "White"})
    report = evaluate_frame(test, good, live, config, np.full(3, 1 / 3))
    report["live_version"] = "v1"

    decision = decide(report, config.thresholds.gate)

    checks = {c.name: c for c in decision.checks}
    assert checks["floor f1"].passed and checks["floor f1"].detail.startswith("f1 (macro)")
    assert not checks["floor roc_auc"].passed and "roc_auc (macro)" in checks["floor roc_auc"].detail
    assert not checks["non-inferior f1"].passed  # the live model is clearly better
    assert decision.action in ("RETRAIN", "HOLD")


# --- fairness, tags, baselines ------------------------------------------------------------------------------------


def test_the_fairness_audit_compares_accuracy_and_per_class_recall_between_groups(tmp_path):
    config = multiclass_config(tmp_path)  # Adult's audit: sex, race, age and sex x race; sex's limit 0.40
    y, p = fixed(n=800, skill=3.0, seed=10)
    sex = np.where(np.arange(800) % 2 == 0, "Male", "Female")
    # Every Female row of class 2 is predicted as class 0: that class's recall collapses for Female only.
    hurt = (sex == "Female") & (y == 2)
    p[hurt] = np.array([0.9, 0.05, 0.05])
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"sex": sex, "race": rng.choice(["White", "Black"], 800), "age": rng.uniform(18, 80, 800)})

    report = audit(frame, y, p, config)
    checks = fairness_checks(report, config)

    groups = report["attributes"]["sex"]["groups"]
    female = (sex == "Female") & (y == 2)
    assert groups["sex=Female"]["recall high"] == 0.0
    male = (sex == "Male") & (y == 2)
    assert groups["sex=Male"]["recall high"] == pytest.approx(np.mean(p[male].argmax(1) == 2), abs=1e-6)
    accuracy = np.mean(p[sex == "Female"].argmax(1) == y[sex == "Female"])
    assert groups["sex=Female"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    odds = report["attributes"]["sex"]["candidate"]["equalized_odds_difference"]
    assert odds["metric"] == "recall high" and odds["value"] == pytest.approx(groups["sex=Male"]["recall high"])
    assert female.sum() > 0
    on_sex = [c for c in checks if c["attribute"] == "sex"]
    assert [c["name"] for c in on_sex] == ["equalized_odds_difference"]  # no live model: no worsening check
    assert not on_sex[0]["success"] and "on recall high" in on_sex[0]["detail"]
    assert set(report["attributes"]) == {"sex", "race", "age", "sex x race"}


def test_error_analysis_counts_an_argmax_that_misses_the_label_as_an_error(tmp_path):
    config = multiclass_config(tmp_path, {"slices": [["sex"]], "tags": []})
    y = np.array([0, 1, 2, 2])
    p = np.array([[0.6, 0.2, 0.2], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
    frame = pd.DataFrame({"sex": ["Male", "Male", "Female", "Female"]})

    result = error_analysis(frame, y, p, config, baseline_p={"trivial": trivial_scores(4, np.array([0.5, 0.3, 0.2]))})

    assert result["errors"] == 2 and result["threshold"] is None
    rows = {r["tag"]: r for r in result["tags"]}
    assert rows["sex=Male"]["errors"] == 1 and rows["sex=Female"]["errors"] == 1
    assert result["baseline_error_rates"]["trivial"] == 0.75  # always class 0


def test_the_baselines_are_the_class_prior_and_a_multinomial_regression(tmp_path):
    config = multiclass_config(tmp_path)
    schema = config.data_schema
    rng = np.random.default_rng(1)
    n = 600
    age = rng.uniform(20, 70, n)
    rows = {name: rng.choice(["a", "b"], n) for name in schema.model_categorical}
    rows |= {name: rng.normal(size=n) for name in schema.model_numeric}
    rows["age"] = age
    rows["income"] = np.array(CLASSES)[np.digitize(age, [37, 54])]
    frame = pd.DataFrame(rows)
    train, test = frame.iloc[:400], frame.iloc[400:]
    y = positives(test, schema)

    prior = label_prior(train, schema)
    simple = simple_model(train, test, schema, seed=0)
    table = baseline_table(y, {"candidate": simple, "trivial": trivial_scores(len(test), prior)}, {})

    assert prior.shape == (3,) and prior.sum() == pytest.approx(1.0)
    assert simple.shape == (200, 3) and np.allclose(simple.sum(axis=1), 1.0)
    assert table["rows"]["candidate"]["metrics"]["accuracy"] > 0.85
    assert table["rows"]["trivial"]["metrics"]["roc_auc"] == 0.5
    assert table["rows"]["trivial"]["metrics"]["accuracy"] == pytest.approx(np.mean(y == np.argmax(prior)), abs=1e-6)


# --- threshold and training ---------------------------------------------------------------------------------------


def test_the_threshold_is_skipped_for_a_multiclass_model_and_says_so(tmp_path):
    config = multiclass_config(tmp_path, {"training": {"threshold": {"strategy": "max_f1"}}})

    record = multiclass_threshold(config.training.threshold)
    (tmp_path / THRESHOLD_FILE).write_text(json.dumps(record))

    assert record["threshold"] is None and "multi-class" in record["reason"] and "max_f1" in record["reason"]
    assert read_threshold(tmp_path) == 0.5  # readers that need a number get the default, unused by argmax


def test_class_weights_per_class_balanced_and_by_value(tmp_path):
    from pipelines.model.train import class_weights

    label = Label(name="y", values=CLASSES)
    path = tmp_path / "train.parquet"
    pd.DataFrame({"y": ["low"] * 6 + ["mid"] * 3 + ["high"] * 1}).to_parquet(path)

    balanced = class_weights("balanced", label, path)
    by_value = class_weights({"high": 4.0}, label, path)

    assert balanced == pytest.approx({0: 10 / 18, 1: 10 / 9, 2: 10 / 3})
    assert by_value == {0: 1.0, 1: 1.0, 2: 4.0}
    with pytest.raises(ConfigError, match="'huge'"):
        class_weights({"huge": 2.0}, label, path)


def test_a_softmax_model_learns_three_classes_and_reports_macro_auc(tmp_path):
    import tensorflow as tf
    import tf_keras as keras

    from pipelines.model.train import build_model, sanity_check

    config = multiclass_config(tmp_path)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=256).astype("float32")
    y = np.digitize(x, [-0.5, 0.5]).astype("int64")
    model = build_model({"x": None}, config.training.model_copy(update={"learning_rate": 0.05}), classes=3)

    record = sanity_check(model, {"x": tf.constant(x)}, tf.constant(y))  # tensors, as a dataset batch gives
    history = model.fit({"x": x}, y, epochs=10, batch_size=32, verbose=0).history

    assert model.output_shape == (None, 3) and record["result"] == "passed"
    probabilities = model.predict({"x": x[:5]}, verbose=0)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert history["accuracy"][-1] > 0.8 and history["auc"][-1] > 0.9


# --- scoring, serving, monitoring ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def softmax_reporter(tmp_path_factory):
    """A SavedModel over Adult's raw features whose three class probabilities follow the row's age band."""
    import tensorflow as tf

    spec = raw_feature_spec(load_config(ADULT_CONFIG).data_schema, with_label=False)

    class Reporter(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
        def serve(self, examples):
            age = tf.reshape(tf.sparse.to_dense(tf.io.parse_example(examples, spec)["age"]), [-1])
            logits = tf.stack([-tf.abs(age - 25.0), -tf.abs(age - 45.0), -tf.abs(age - 65.0)], axis=1) / 5.0
            return {OUTPUT: tf.nn.softmax(logits)}

    module = Reporter()
    path = tmp_path_factory.mktemp("model") / "softmax"
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.serve})
    return path


def adult_rows(ages: list[float], schema) -> pd.DataFrame:
    columns = {f.name: [40.0] * len(ages) for f in schema.model_features if f.kind == "numeric"}
    columns |= {f.name: ["x"] * len(ages) for f in schema.model_features if f.kind == "categorical"}
    columns["age"] = ages
    return pd.DataFrame(columns)


def test_a_softmax_model_scores_each_class_in_batches_and_a_binary_schema_refuses_it(tmp_path, softmax_reporter):
    from pipelines.model.scoring import score

    config = multiclass_config(tmp_path)
    frame = adult_rows([20.0, 44.0, 70.0, 50.0, 30.0], config.data_schema)

    p = score(softmax_reporter, frame, config.data_schema, batch_size=2)

    assert p.shape == (5, 3) and np.allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert p.argmax(axis=1).tolist() == [0, 1, 2, 1, 0]
    binary = load_config(write_config(tmp_path))
    with pytest.raises(ValueError, match="returned .* scores for 5 rows"):
        score(softmax_reporter, frame, binary.data_schema)


def test_the_server_answers_each_class_probability_and_the_predicted_class(tmp_path):
    from pipelines.core.deployment_state import Slot
    from pipelines.serving.server import Loaded, SlotModel, _multiclass_body

    config = multiclass_config(tmp_path)
    slot = next(iter(Slot))
    model, loaded = SlotModel(config, slot), Loaded(None, "v1", None, 0.5)
    scored = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=np.float32)

    rows = _multiclass_body(scored, "instances", tuple(CLASSES), model, slot, loaded)["predictions"]
    columns = _multiclass_body(scored, "inputs", tuple(CLASSES), model, slot, loaded)["outputs"]

    assert [r["class"] for r in rows] == [1, 0] and [r["label"] for r in rows] == ["mid", "low"]
    assert rows[0]["probability"] == pytest.approx(0.7) and rows[0]["probabilities"]["high"] == pytest.approx(0.2)
    assert columns["class"] == [1, 0] and columns["label"] == ["mid", "low"]
    assert columns["probability"] == pytest.approx([0.7, 0.5])
    json.dumps(rows)  # plain floats: JSON-ready


def test_monitoring_measures_a_multiclass_versions_accuracy_without_judging_macro_metrics(tmp_path):
    from pipelines.core.contracts import ConceptVerdict
    from pipelines.monitoring.metrics import version_performance

    config = multiclass_config(tmp_path)
    rows = [
        {"label": "low", "class": 0, "probability": 0.8, "role": "live"},
        {"label": "high", "class": 2, "probability": 0.6, "role": "live"},
        {"label": "mid", "class": 0, "probability": 0.5, "role": "live"},
        {"label": "mid", "class": 1, "probability": 0.9, "role": "live"},
    ]

    entry = version_performance(config, rows, None, None)

    assert entry["metrics"]["accuracy"] == 0.75 and entry["verdict"] == ConceptVerdict.INSUFFICIENT_DATA
    assert "multi-class" in entry["reason"]

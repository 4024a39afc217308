"""Loading and validating the YAML config: paths, error messages naming the key, the fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ADULT_CONFIG, REPO, write_config

from pipelines.core.config import ConfigError, load_config


def adult_raw() -> dict[str, Any]:
    return yaml.safe_load(ADULT_CONFIG.read_text())


def dump(directory: Path, raw: dict[str, Any], name: str = "config.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw))
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    return str(excinfo.value)


def test_adult_config_loads():
    config = load_config(ADULT_CONFIG)

    assert config.name == "adult-income"
    assert config.data.root == (REPO / ".data" / "adult" / "partitions").resolve()
    assert config.artifact_root == (REPO / ".artifacts" / "adult").resolve()
    assert config.data_schema.label.name == "income"
    assert config.data_schema.label.positive == ">50K"
    assert config.data_schema.numeric == [
        "age",
        "education_num",
        "capital_gain",
        "capital_loss",
        "hours_per_week",
    ]
    assert "sex" in config.data_schema.categorical
    assert config.data_schema.columns[-1] == "income"
    assert config.slices == [["sex"], ["race"], ["age"], ["sex", "race"]]
    assert config.thresholds.gate.floors == {"accuracy": 0.78, "roc_auc": 0.85}
    assert config.tracking_uri == f"sqlite:///{config.artifact_root / 'mlflow.db'}"


def test_relative_paths_resolve_against_the_yaml_folder_not_the_cwd(tmp_path, monkeypatch):
    raw = adult_raw()
    raw["data"]["root"] = "data/partitions"
    raw["artifact_root"] = "../artifacts"
    path = dump(tmp_path / "configs", raw)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(Path("..") / "configs" / "config.yaml")

    assert config.data.root == (tmp_path / "configs" / "data" / "partitions").resolve()
    assert config.artifact_root == (tmp_path / "artifacts").resolve()
    assert config == load_config(path)


def test_absolute_paths_are_kept(tmp_path):
    config = load_config(write_config(tmp_path))

    assert config.data.root == tmp_path / "partitions"
    assert config.artifact_root == tmp_path / "artifacts"


def test_unknown_key_is_named_with_its_dotted_path(tmp_path):
    raw = adult_raw()
    raw["thresholds"]["gate"]["florrs"] = raw["thresholds"]["gate"].pop("floors")

    message = config_error(dump(tmp_path, raw))

    assert "thresholds.gate.florrs: unknown key (did you mean 'floors'?)" in message


@pytest.mark.parametrize(
    ("where", "typo", "line"),
    [
        # inside a list of features, a dict of per-feature overrides, an optional section
        (
            ("schema", "features", 0),
            {"slicebins": [30]},
            "schema.features.0.slicebins: unknown key (did you mean 'slice_bins'?)",
        ),
        (
            ("thresholds", "drift"),
            {"features": {"age": {"tst": "ks"}}},
            "thresholds.drift.features.age.tst: unknown key (did you mean 'test'?)",
        ),
        (
            ("training",),
            {"early_stopping": {"patiense": 3}},
            "training.early_stopping.patiense: unknown key (did you mean 'patience'?)",
        ),
        (
            ("schema", "label"),
            {"classes": ["a", "b"]},
            "schema.label.classes: unknown key (known here: name, positive, values, annotators)",
        ),
    ],
)
def test_an_unknown_key_anywhere_gets_the_keys_known_there(tmp_path, where, typo, line):
    raw = adult_raw()
    place = raw
    for step in where:
        place = place[step]
    place.update(typo)

    assert f"  {line}" in config_error(dump(tmp_path, raw)).splitlines()


@pytest.mark.parametrize("key", [("data", "window_days"), ("data", "root"), ("schema", "label"), ("artifact_root",)])
def test_missing_required_key_is_named(tmp_path, key):
    raw = adult_raw()
    place = raw
    for step in key[:-1]:
        place = place[step]
    del place[key[-1]]

    message = config_error(dump(tmp_path, raw))

    assert f"  {'.'.join(key)}: Field required" in message.splitlines()


def test_a_config_of_data_schema_and_artifact_root_alone_takes_the_documented_defaults(tmp_path):
    raw = adult_raw()
    minimal = {k: raw[k] for k in ("name", "data", "schema", "artifact_root")}
    minimal["data"] = {"root": "partitions", "window_days": 7}

    config = load_config(dump(tmp_path, minimal))

    assert config.thresholds.gate.floors == {}  # no floor: the gate still needs the majority-class baseline beaten
    assert config.thresholds.gate.primary_metric == "roc_auc"  # defined for a binary and a multi-class label
    assert config.tracking_uri == f"sqlite:///{config.artifact_root / 'mlflow.db'}"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"training": {"epochs": "many"}}, "training.epochs"),
        ({"training": {"hidden_units": "64"}}, "training.hidden_units"),
        ({"data": {"test_fraction": 1.5}}, "data.test_fraction"),
        ({"thresholds": {"gate": {"primary_metric": "mse"}}}, "thresholds.gate.primary_metric"),
        ({"thresholds": {"drift": {"bins": 1}}}, "thresholds.drift.bins"),
    ],
)
def test_wrong_type_or_value_is_named(tmp_path, overrides, key):
    message = config_error(write_config(tmp_path, overrides))

    assert key in message


def test_slice_naming_an_unknown_feature_is_rejected(tmp_path):
    message = config_error(write_config(tmp_path, {"slices": [["sex"], ["gender"]]}))

    assert "slices" in message
    assert "gender" in message


def test_protected_attribute_naming_an_unknown_feature_is_rejected(tmp_path):
    message = config_error(write_config(tmp_path, {"protected_attributes": ["sex", "religion"]}))

    assert "protected_attributes" in message
    assert "religion" in message


def test_numeric_slice_feature_needs_slice_bins(tmp_path):
    message = config_error(write_config(tmp_path, {"slices": [["hours_per_week"]]}))

    assert "hours_per_week" in message
    assert "slice_bins" in message


def test_partition_pattern_must_contain_the_date(tmp_path):
    message = config_error(write_config(tmp_path, {"data": {"partition_pattern": "part-0.csv"}}))

    assert "data.partition_pattern" in message
    assert "{date}" in message


def test_feature_min_above_max_is_rejected(tmp_path):
    raw = adult_raw()
    raw["schema"]["features"][1] = {"name": "education_num", "kind": "numeric", "min": 16, "max": 1}

    message = config_error(dump(tmp_path, raw))

    assert "schema.features.1" in message
    assert "education_num" in message
    assert "min 16.0 > max 1.0" in message


def test_categorical_feature_with_numeric_range_is_rejected(tmp_path):
    raw = adult_raw()
    sex = next(f for f in raw["schema"]["features"] if f["name"] == "sex")
    sex["min"] = 0

    message = config_error(dump(tmp_path, raw))

    assert "'sex'" in message
    assert "numeric features only" in message


def test_duplicate_column_is_rejected(tmp_path):
    raw = adult_raw()
    raw["schema"]["features"].append({"name": "sex", "kind": "categorical"})

    assert "duplicate column names: ['sex']" in config_error(dump(tmp_path, raw))


def test_the_label_listed_as_a_feature_is_named_as_such(tmp_path):
    raw = adult_raw()
    raw["schema"]["features"].append({"name": "income", "kind": "categorical"})

    assert "schema: Value error, 'income' is the label: it cannot also be a feature" in config_error(
        dump(tmp_path, raw)
    )


def test_missing_file_is_a_config_error(tmp_path):
    missing = tmp_path / "nope.yaml"

    message = config_error(missing)

    assert "not found" in message
    assert str(missing) in message


@pytest.mark.parametrize("text", ["name: [unclosed\n", "- just\n- a list\n"], ids=["not-yaml", "not-a-mapping"])
def test_malformed_file_is_a_config_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)

    assert str(path) in config_error(path)


def test_fingerprint_is_stable_and_changes_with_a_threshold(tmp_path):
    (tmp_path / "a").mkdir()
    base = load_config(write_config(tmp_path / "a"))
    same = load_config(write_config(tmp_path / "a"))
    changed = load_config(write_config(tmp_path / "a", {"thresholds": {"drift": {"psi": 0.25}}}))

    assert len(base.fingerprint) == 16
    assert base.fingerprint == same.fingerprint
    assert changed.fingerprint != base.fingerprint


def test_config_is_frozen():
    config = load_config(ADULT_CONFIG)

    with pytest.raises(ValueError):
        config.training.epochs = 1  # type: ignore[misc]


def test_positive_label_must_be_one_of_the_label_values(tmp_path):
    message = config_error(write_config(tmp_path, {"schema": {"label": {"positive": ">50k"}}}))

    assert "schema.label" in message and "positive '>50k' is not one of values ['<=50K', '>50K']" in message


def test_drift_override_naming_an_unknown_feature_is_rejected(tmp_path):
    message = config_error(write_config(tmp_path, {"thresholds": {"drift": {"features": {"agee": {"test": "ks"}}}}}))

    assert "thresholds.drift.features: unknown features ['agee']" in message


def test_first_day_is_the_earliest_partition_under_the_root(tmp_path):
    config = load_config(write_config(tmp_path))
    assert config.data.first_day() is None
    for ds in ("2026-01-07", "2026-01-03", "not-a-date"):
        path = config.data.root / f"ds={ds}" / "part-0.csv"
        path.parent.mkdir(parents=True)
        path.write_text("x\n")

    assert str(config.data.first_day()) == "2026-01-03"


def test_numbers_where_data_values_are_meant_are_read_as_the_csv_writes_them(tmp_path):
    # `positive: 1` for a 0/1 label; a categorical coded by numbers
    raw = adult_raw()
    raw["schema"]["label"] = {"name": "income", "positive": 1, "values": [0, 1]}
    raw["schema"]["features"][5]["values"] = [1, 2, 3.5]
    raw["tags"] = []  # one names workclass values

    schema = load_config(dump(tmp_path, raw)).data_schema

    assert (schema.label.positive, schema.label.values) == ("1", ["0", "1"])
    assert schema.features[5].values == ["1", "2", "3.5"]


def test_a_yaml_boolean_where_a_data_value_is_meant_is_refused_with_the_fix(tmp_path):
    raw = adult_raw()
    raw["schema"]["label"] = {"name": "income", "positive": "yes", "values": ["no", "yes"]}
    text = yaml.safe_dump(raw).replace("positive: 'yes'", "positive: yes").replace("- 'no'", "- no")
    path = tmp_path / "config.yaml"
    path.write_text(text)

    message = config_error(path)

    assert "schema.label.positive" in message and "the boolean True" in message and "quote it" in message
    assert "schema.label.values.0" in message and "the boolean False" in message

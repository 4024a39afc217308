"""Error analysis by tags: exact counts and shares on hand-made rows, the ranking, and the rule grammar."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import ADULT_CONFIG, write_config

from pipelines.core.config import ConfigError, load_config
from pipelines.core.rules import Condition, parse_rule
from pipelines.evaluation.tags import error_analysis, rule_mask

TAGS = [
    {"name": "young", "rule": "age < 25"},
    {"name": "long_hours", "rule": "hours_per_week > 60", "hlp_error_rate": 0.0},
]


@pytest.fixture
def config(tmp_path):
    return load_config(write_config(tmp_path, {"slices": [["sex"]], "tags": TAGS}))


def frame(rows: list[tuple[float, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["age", "hours_per_week", "sex"])


# Ten rows, all true negatives; the candidate errs on rows 0, 1, 2 (young) and 5 (long hours).
ROWS = frame(
    [(20, 40, "Female"), (22, 40, "Female"), (23, 40, "Male"), (24, 40, "Male")]
    + [(40, 70, "Male"), (40, 70, "Female")]
    + [(40, 40, "Male")] * 4
)
Y = np.zeros(10, dtype=int)
CANDIDATE = np.array([0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1, 0.1, 0.1])
SIMPLE = np.array([0.9, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.9])  # errs on 0, 4, 5, 9


def by_tag(result):
    return {row["tag"]: row for row in result["tags"]}


def test_counts_shares_and_rates_per_tag_are_exact(config):
    result = error_analysis(ROWS, Y, CANDIDATE, config)
    tags = by_tag(result)

    assert (result["rows"], result["errors"], result["error_rate"]) == (10, 4, 0.4)
    assert set(tags) == {"sex=Female", "sex=Male", "young", "long_hours"}
    young = tags["young"]
    assert (young["rows"], young["data_share"], young["errors"]) == (4, 0.4, 3)
    assert (young["error_rate"], young["error_share"]) == (0.75, 0.75)
    assert (young["kind"], young["definition"]) == ("rule", "age < 25")
    female = tags["sex=Female"]
    assert (female["rows"], female["errors"], female["error_share"]) == (3, 3, 0.75)
    assert (female["kind"], female["definition"]) == ("slice", "sex")
    assert tags["sex=Male"]["error_rate"] == round(1 / 7, 6)
    json.dumps(result, allow_nan=False)


def test_room_is_the_overall_error_drop_if_the_candidate_matched_the_best_baseline(config):
    result = error_analysis(ROWS, Y, CANDIDATE, config, baseline_p={"simple_model": SIMPLE, "live": None})
    tags = by_tag(result)

    young = tags["young"]  # candidate 3/4 wrong, the simple model 1/4: 2 fewer errors in 10 rows
    assert young["baseline_error_rates"] == {"simple_model": 0.25}
    assert (young["best_baseline"], young["best_baseline_error_rate"], young["room"]) == ("simple_model", 0.25, 0.2)
    long_hours = tags["long_hours"]  # the HLP (0 errors) beats the simple model (2/2 wrong) here
    assert long_hours["baseline_error_rates"] == {"simple_model": 1.0, "hlp": 0.0}
    assert (long_hours["best_baseline"], long_hours["room"]) == ("hlp", 0.1)
    assert tags["sex=Male"]["room"] == -0.1  # candidate 1 error, the simple model 2: already better
    assert [row["tag"] for row in result["tags"]] == ["young", "sex=Female", "long_hours", "sex=Male"]
    assert (result["baseline_error_rates"], result["best_baseline"], result["room"]) == (
        {"simple_model": 0.4},
        "simple_model",
        0.0,
    )


def test_without_baselines_tags_rank_by_share_of_errors_and_room_is_none(config):
    result = error_analysis(ROWS, Y, CANDIDATE, config.model_copy(update={"tags": config.tags[:1]}))

    assert [row["tag"] for row in result["tags"]] == ["sex=Female", "young", "sex=Male"]
    assert all(row["room"] is None and row["best_baseline"] is None for row in result["tags"])


def test_threshold_and_boolean_baseline_predictions_are_honoured(config):
    result = error_analysis(ROWS, Y, CANDIDATE, config, threshold=0.95, baseline_p=SIMPLE >= 0.5)

    assert result["errors"] == 0  # nothing scores 0.95: no positive predictions, no errors on negatives
    assert result["baseline_error_rates"] == {"baseline": 0.4}  # its own cut at 0.5 stands


def test_overall_hlp_comes_from_the_configured_accuracy(tmp_path):
    config = load_config(write_config(tmp_path, {"slices": [], "tags": [], "baselines": {"hlp": {"accuracy": 0.9}}}))

    result = error_analysis(ROWS, Y, CANDIDATE, config)

    assert (result["baseline_error_rates"], result["best_baseline"], result["room"]) == ({"hlp": 0.1}, "hlp", 0.3)
    assert result["tags"] == []


def test_a_tag_no_row_carries_has_undefined_rates(config):
    result = error_analysis(ROWS.iloc[4:], Y[4:], CANDIDATE[4:], config, baseline_p=SIMPLE[4:])
    young = by_tag(result)["young"]

    assert (young["rows"], young["errors"], young["data_share"]) == (0, 0, 0.0)
    assert young["error_rate"] is None and young["room"] is None
    assert young["baseline_error_rates"] == {"baseline": None}
    assert result["tags"][-1]["tag"] == "young"


def test_lengths_must_agree(config):
    with pytest.raises(ValueError, match="differ in length"):
        error_analysis(ROWS, Y[:5], CANDIDATE, config)


def test_rule_mask_treats_missing_values_as_not_tagged(config):
    rows = pd.DataFrame(
        {
            "age": ["20", None, "30"],
            "hours_per_week": [40, 40, 40],
            "workclass": ["Private", None, "State-gov"],
        }
    )

    assert rule_mask(rows, parse_rule("workclass != 'State-gov'"), config.data_schema).tolist() == [
        True,
        False,
        False,
    ]
    assert rule_mask(rows, parse_rule("workclass not in ['Private']"), config.data_schema).tolist() == [
        False,
        False,
        True,
    ]
    assert rule_mask(rows, parse_rule("age <= 30 and workclass == 'State-gov'"), config.data_schema).tolist() == [
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("rule", "conditions"),
    [
        ("age < 25", [("age", "<", 25.0)]),
        ("age<=25.5", [("age", "<=", 25.5)]),
        ("hours_per_week > 60", [("hours_per_week", ">", 60.0)]),
        ("capital_gain >= 1e3", [("capital_gain", ">=", 1000.0)]),
        ("capital_loss != 0", [("capital_loss", "!=", 0.0)]),
        ("workclass == 'Private'", [("workclass", "==", "Private")]),
        ('sex == "Female"', [("sex", "==", "Female")]),
        ("occupation in ['Sales', 'Tech-support']", [("occupation", "in", ("Sales", "Tech-support"))]),
        ("age not in [17, 18]", [("age", "not in", (17.0, 18.0))]),
        ("`age` < 30 and `sex` == 'Male'", [("age", "<", 30.0), ("sex", "==", "Male")]),  # as a "mean radius"
        (
            "age < 30 and marital_status == 'Married-civ-spouse' and hours_per_week > 60",
            [("age", "<", 30.0), ("marital_status", "==", "Married-civ-spouse"), ("hours_per_week", ">", 60.0)],
        ),
    ],
)
def test_rule_grammar_accepts_the_documented_forms(tmp_path, rule, conditions):
    config = load_config(write_config(tmp_path, {"tags": [{"name": "t", "rule": rule}]}))

    assert config.tags[0].conditions == tuple(Condition(*c) for c in conditions)


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("__import__('os')", "unexpected text at position 10"),
        ("age < ", "expected a number or a quoted string after '<' at the end"),
        ("age <> 3", "expected a number or a quoted string after '<' at position 5, got '>'"),
        ("", "the rule is empty"),
        ("age < 25 or age > 60", "expected 'and' or the end of the rule at position 9, got 'or'"),
        ("age < 25 and", "expected a column name at the end"),
        ("workclass == Private", "got 'Private'"),
        ("occupation in 'Sales'", "expected '[' after 'in'"),
        ("occupation in ['Sales' 'Tech-support']", "expected ',' or ']'"),
        ("age.__class__ < 3", "unexpected text at position 3"),
        ("agee < 25 and sexx == 'Male'", "unknown columns ['agee', 'sexx']"),
        ("income == '>50K'", "unknown columns ['income']"),
        ("`mean radius` > 15", "unknown columns ['mean radius']"),
        ("`age < 30", "unexpected text at position 0"),
        ("workclass < 'Private'", "categorical 'workclass' has no order for '<'"),
        ("age == 'old'", "numeric 'age' is compared with a string"),
        ("sex == 1", "categorical 'sex' takes quoted strings"),
        ("workclass in ['Private', 'Privat']", "['Privat'] not among the values of 'workclass'"),
    ],
)
def test_malformed_or_unsafe_rule_is_rejected_at_load_naming_the_tag(tmp_path, rule, why):
    path = write_config(tmp_path, {"tags": [{"name": "young", "rule": "age < 25"}, {"name": "bad_tag", "rule": rule}]})

    with pytest.raises(ConfigError) as excinfo:
        load_config(path)

    message = str(excinfo.value)
    assert "'bad_tag'" in message and why in message
    assert "tags" in message


def test_duplicate_tag_names_are_rejected(tmp_path):
    path = write_config(
        tmp_path, {"tags": [{"name": "young", "rule": "age < 25"}, {"name": "young", "rule": "age < 30"}]}
    )

    with pytest.raises(ConfigError, match=r"tags: duplicate names \['young'\]"):
        load_config(path)


def test_adult_config_tags_parse_and_tag_real_rows(adult_frame):
    config = load_config(ADULT_CONFIG)
    rows = adult_frame.head(2000)
    shares = {tag.name: rule_mask(rows, tag.conditions, config.data_schema).mean() for tag in config.tags}

    assert {"young", "long_hours", "has_capital_gain", "self_employed"} <= set(shares)
    assert all(0 < share < 0.5 for share in shares.values()), shares
    assert config.baselines.simple_model is True and config.baselines.hlp == {}

"""Demo data: parsing the Adult files, writing daily partitions and injecting each kind of drift."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL, write_config

from pipelines.core.config import load_config
from pipelines.data.demo import ADULT_COLUMNS, DriftSpec, inject_drift, parse_adult, write_partitions

ADULT_TEXT = "\n".join(
    [
        "|1x3 Cross validator",
        "25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, "
        "United-States, <=50K.",
        "",
        "38, ?, 89814, HS-grad, 9, Married-civ-spouse, ?, Husband, White, Male, 0, 0, 50, ?, >50K.",
        "   \t",
        "28, Local-gov, 336951, Assoc-acdm, 12, Married-civ-spouse, Protective-serv, Husband, White, Male, "
        "0, 0, 40, United-States, >50K",
        "",
    ]
)


@pytest.fixture
def config(tmp_path):
    return load_config(write_config(tmp_path, SMALL))


@pytest.fixture(scope="module")
def sample(adult_frame):
    """2,000 Adult rows, as one partition would hold them (strings, NA for missing)."""
    return adult_frame.sample(2000, random_state=7).reset_index(drop=True)


def test_parse_adult_handles_the_file_quirks():
    df = parse_adult(ADULT_TEXT)

    assert list(df.columns) == ADULT_COLUMNS
    assert len(df) == 3
    assert df["age"].tolist() == ["25", "38", "28"]
    assert df["workclass"].isna().tolist() == [False, True, False]
    assert df.loc[[0, 2], "workclass"].tolist() == ["Private", "Local-gov"]
    assert df.loc[1].isna().tolist() == [c in ("workclass", "occupation", "native_country") for c in ADULT_COLUMNS]
    assert df["income"].tolist() == ["<=50K", ">50K", ">50K"]
    assert df.loc[0, "marital_status"] == "Never-married"  # no leading space left from ", "


def test_read_adult_wheel_has_all_rows_and_two_clean_labels(adult_frame):
    assert len(adult_frame) == 48_842
    assert list(adult_frame.columns) == ADULT_COLUMNS
    assert set(adult_frame["income"]) == {"<=50K", ">50K"}
    assert not adult_frame.isin(["?"]).any().any()
    assert adult_frame["workclass"].isna().sum() > 0


def test_write_partitions_is_deterministic(adult_frame, config):
    first = [p.read_bytes() for p in write_partitions(adult_frame, config, date(2026, 1, 1), 500, days=3)]
    second = [p.read_bytes() for p in write_partitions(adult_frame, config, date(2026, 1, 1), 500, days=3)]
    other_seed = [p.read_bytes() for p in write_partitions(adult_frame, config, date(2026, 1, 1), 500, days=3, seed=1)]

    assert first == second
    assert first != other_seed


def test_write_partitions_writes_one_file_a_day_with_a_header(adult_frame, config):
    paths = write_partitions(adult_frame, config, date(2026, 1, 30), rows_per_day=500, days=4)

    expected_days = ["2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"]
    assert paths == [config.data.root / f"ds={d}" / "part-0.csv" for d in expected_days]
    assert sorted(p.name for p in config.data.root.iterdir()) == [f"ds={d}" for d in expected_days]
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in paths]
    assert all(list(f.columns) == ADULT_COLUMNS for f in frames)
    assert [len(f) for f in frames] == [500] * 4
    assert not list(config.data.root.rglob(".*"))  # no temporary files left behind
    # Days are disjoint slices of the shuffled rows.
    keys = pd.concat(frames)[["fnlwgt", "age", "education", "hours_per_week"]].apply(tuple, axis=1)
    assert keys.is_unique


def test_write_partitions_without_days_spreads_all_rows(adult_frame, config):
    paths = write_partitions(adult_frame.head(1000), config, date(2026, 1, 1), rows_per_day=300)

    sizes = [len(pd.read_csv(p)) for p in paths]
    assert len(paths) == 3
    assert sum(sizes) == 1000
    assert all(300 <= s < 400 for s in sizes)


def to_float(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce")


def test_covariate_drift_raises_the_mean_age(sample):
    spec = DriftSpec.parse("2026-01-01:covariate:age")

    drifted = inject_drift(sample, spec, "income", np.random.default_rng(0))

    assert len(drifted) == len(sample)
    assert to_float(drifted["age"]).mean() > to_float(sample["age"]).mean() + 5


def test_covariate_drift_on_a_categorical_favours_rare_values(sample):
    spec = DriftSpec.parse("2026-01-01:covariate:race")

    drifted = inject_drift(sample, spec, "income", np.random.default_rng(0))

    assert (drifted["race"] != "White").mean() > 2 * (sample["race"] != "White").mean()


def test_label_drift_flips_the_label_where_the_column_is_high(sample):
    spec = DriftSpec.parse("2026-01-01:label:age")
    age = to_float(sample["age"])
    high = (age > age.median()).to_numpy()

    drifted = inject_drift(sample, spec, "income", np.random.default_rng(0))

    assert high.sum() > 500
    assert (drifted["income"][high] != sample["income"][high]).all()
    assert set(drifted["income"][high]) == {"<=50K", ">50K"}
    pd.testing.assert_series_equal(drifted["income"][~high], sample["income"][~high])
    pd.testing.assert_frame_equal(drifted.drop(columns="income"), sample.drop(columns="income"))


def test_missing_drift_blanks_about_thirty_percent(sample):
    spec = DriftSpec.parse("2026-01-01:missing:education")

    drifted = inject_drift(sample, spec, "income", np.random.default_rng(0))

    assert sample["education"].isna().sum() == 0
    assert 0.25 < drifted["education"].isna().mean() < 0.35
    kept = drifted["education"].notna()
    pd.testing.assert_series_equal(drifted["education"][kept], sample["education"][kept])
    pd.testing.assert_frame_equal(drifted.drop(columns="education"), sample.drop(columns="education"))


def test_schema_drift_renames_the_column(sample):
    drifted = inject_drift(sample, DriftSpec.parse("2026-01-01:schema:sex"), "income", np.random.default_rng(0))

    assert "sex" not in drifted.columns
    assert drifted["sex_renamed"].tolist() == sample["sex"].tolist()


def test_drift_on_an_unknown_column_is_rejected(sample):
    with pytest.raises(ValueError, match="'height'"):
        inject_drift(sample, DriftSpec.parse("2026-01-01:missing:height"), "income", np.random.default_rng(0))


def test_write_partitions_drifts_only_the_covered_days(adult_frame, config):
    drifts = [
        DriftSpec.parse("2026-01-02..2026-01-03:covariate:age"),
        DriftSpec.parse("2026-01-04:schema:hours_per_week"),
    ]

    paths = write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=5, drifts=drifts)
    frames = [pd.read_csv(p) for p in paths]

    plain = write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=5)
    assert paths[0].read_bytes() == plain[0].read_bytes()
    assert paths[4].read_bytes() == plain[4].read_bytes()
    mean_ages = [f["age"].mean() for f in frames]
    assert min(mean_ages[1], mean_ages[2]) > max(mean_ages[0], mean_ages[4]) + 5
    assert "hours_per_week_renamed" in frames[3].columns
    assert "hours_per_week" not in frames[3].columns
    assert all("hours_per_week" in frames[i].columns for i in (0, 1, 2, 4))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2026-01-20..2026-01-22:covariate:age",
            DriftSpec(date(2026, 1, 20), date(2026, 1, 22), "covariate", "age"),
        ),
        ("2026-01-20:label:sex", DriftSpec(date(2026, 1, 20), date(2026, 1, 20), "label", "sex")),
        (
            "2026-02-01..2026-02-01:missing:race",
            DriftSpec(date(2026, 2, 1), date(2026, 2, 1), "missing", "race"),
        ),
    ],
)
def test_drift_spec_parse(text, expected):
    assert DriftSpec.parse(text) == expected


def test_drift_spec_covers_its_range_inclusively():
    spec = DriftSpec.parse("2026-01-20..2026-01-22:covariate:age")

    assert [spec.covers(date(2026, 1, d)) for d in range(19, 24)] == [False, True, True, True, False]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-01-20:shift:age", "kind must be one of"),
        ("2026-01-20:covariate", "expected DATE"),
        ("2026-01-20:covariate:age:extra", "expected DATE"),
        ("20/01/2026:covariate:age", "expected DATE"),
        ("2026-02-30:covariate:age", "expected DATE"),
        ("2026-01-22..2026-01-20:covariate:age", "end before start"),
        ("2026-01-20..:covariate:age", "expected DATE"),
    ],
)
def test_drift_spec_rejects_bad_specs(text, message):
    with pytest.raises(ValueError, match=message):
        DriftSpec.parse(text)

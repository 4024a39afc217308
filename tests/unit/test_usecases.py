"""Use cases by name: the configs folder's YAML files, never a path; what a run for D would read; data events."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import SMALL, write_config

from pipelines.core.config import load_config
from pipelines.core.contracts import PipelineError
from pipelines.core.usecases import (
    check_window,
    config_path,
    new_partition,
    partition_days,
    registered,
    request_from_events,
)


@pytest.fixture
def configs(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    for name in ["loans.yaml", "adult.yaml", "adult.expectations.yaml", "two words.yaml", "readme.md"]:
        (folder / name).write_text("name: x\n")
    monkeypatch.setenv("CT_CONFIGS_DIR", str(folder))
    return folder


def test_the_registered_use_cases_are_the_yaml_stems_without_expectations(configs):
    assert registered() == ["adult", "loans"]
    assert config_path("loans") == configs / "loans.yaml"
    assert config_path(None) == configs / "adult.yaml"


def test_the_default_folder_is_the_projects_configs(monkeypatch):
    monkeypatch.delenv("CT_CONFIGS_DIR", raising=False)
    assert "adult" in registered()


@pytest.mark.parametrize(
    ("request_", "what"),
    [
        ("../configs/adult.yaml", "a path, not a use-case name"),
        ("/etc/passwd", "a path, not a use-case name"),
        ("adult.yaml", "a path, not a use-case name"),
        ("adult.expectations", "unknown"),
        ("two words", "unknown"),
        ("payments", "unknown"),
    ],
)
def test_anything_but_a_registered_name_is_refused_listing_the_names(configs, request_, what):
    with pytest.raises(PipelineError) as refused:
        config_path(request_)
    listed = f"the registered use cases are ['adult', 'loans'] (the YAML files in {configs})"
    assert str(refused.value).startswith(f"use case {request_!r} is {what}: {listed}")


def test_a_window_without_any_partition_is_refused_with_the_dates_that_have_data(tmp_path, adult_frame):
    from pipelines.data.demo import write_partitions

    config = load_config(write_config(tmp_path, SMALL))
    with pytest.raises(PipelineError, match="there is no partition at all: load the data first"):
        check_window(config, date(2014, 6, 30), 3)
    write_partitions(adult_frame, config, date(2014, 6, 26), rows_per_day=20, days=5)
    assert partition_days(config) == [date(2014, 6, d) for d in range(26, 31)]

    check_window(config, date(2014, 6, 30), 3)
    check_window(config, date(2014, 7, 2), 3)  # one day of data in the window is enough to try
    with pytest.raises(PipelineError) as refused:
        check_window(config, date(2014, 7, 3), 3)
    assert "no partition in the window 2014-07-01..2014-07-03" in str(refused.value)
    assert str(refused.value).endswith(
        "partitions exist from 2014-06-26 to 2014-06-30 (5 days): pick a date D in that range"
    )

    assert new_partition(config, None) == date(2014, 6, 30)
    assert new_partition(config, date(2014, 6, 29)) == date(2014, 6, 30)
    assert new_partition(config, date(2014, 6, 30)) is None


def test_a_data_event_names_the_use_case_and_date_of_the_run():
    events = [
        {"extra": {"use_case": "loans", "ds": "2026-03-04"}, "timestamp": "2026-03-05T01:00:00+00:00"},
        {"extra": {"use_case": "adult", "ds": "2026-03-05"}, "timestamp": "2026-03-06T01:00:00+00:00"},
    ]
    assert request_from_events(events) == ("adult", date(2026, 3, 5))  # the latest event
    with pytest.raises(PipelineError, match="none reached it"):
        request_from_events([])
    with pytest.raises(PipelineError, match=r"does not say which partition arrived: its extra needs"):
        request_from_events([{"extra": {"note": "manual"}, "timestamp": "2026-03-06T01:00:00+00:00"}])

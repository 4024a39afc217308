"""The CLI, the second runner: help, data preparation, config inspection and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ADULT_WHEEL, SMALL, write_config

from pipelines.runner import STAGES


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], capture_output=True, text=True)


def test_help_documents_every_stage_and_command():
    result = cli("--help")
    assert result.returncode == 0
    for command in [*(str(s.name) for s in STAGES), "run", "data", "summary", "config", "deploy"]:
        assert f"    {command} " in result.stdout, command


def test_data_prepare_writes_partitions_with_injected_drift(tmp_path):
    config = write_config(tmp_path, SMALL)
    result = cli("data", "prepare", "--config", str(config), "--wheel", str(ADULT_WHEEL), "--days", "3",
                 "--drift", "2026-01-02:schema:age")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote 3 partitions" in result.stdout
    headers = [(tmp_path / f"partitions/ds=2026-01-0{d}/part-0.csv").read_text().splitlines()[0] for d in (1, 2, 3)]
    assert "age," in headers[0] and "age_renamed" in headers[1] and "age," in headers[2]


def test_config_get_prints_resolved_values(tmp_path):
    config = write_config(tmp_path, SMALL)
    assert cli("config", "--config", str(config), "--get", "artifact_root").stdout.strip() == str(
        tmp_path / "artifacts"
    )
    window = cli("config", "--config", str(config), "--get", "data.window_days")
    assert json.loads(window.stdout) == 3


def test_config_get_of_an_unknown_key_is_a_clear_error(tmp_path):
    result = cli("config", "--config", str(write_config(tmp_path, SMALL)), "--get", "data.windw_days")
    assert result.returncode == 1 and "no key 'data.windw_days'" in result.stderr


def test_invalid_config_exits_2_naming_the_key(tmp_path):
    config = write_config(tmp_path, {"training": {"epochs": "many"}})
    result = cli("summary", "--config", str(config), "--date", "2026-01-03")
    assert result.returncode == 2
    assert "training.epochs" in result.stderr and "Traceback" not in result.stderr


def test_a_date_not_written_as_iso_is_refused_with_the_form_it_needs(tmp_path):
    config = str(write_config(tmp_path, SMALL))
    for args in (("run", "--date", "2026-13-04"), ("summary", "--date", "14/01/2026")):
        result = cli(*args, "--config", config)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert f"argument --date: '{args[2]}' is not a date: write it as YYYY-MM-DD" in result.stderr


def test_stage_without_its_inputs_says_what_to_run_first(tmp_path):
    config = write_config(tmp_path, SMALL)
    result = cli("train", "--config", str(config), "--date", "2026-01-03")
    assert result.returncode == 1
    assert "no transform output at " in result.stderr and "run `transform` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_rollback_with_nothing_live_is_a_clear_error(tmp_path):
    config = write_config(tmp_path, SMALL)
    result = cli("deploy", "rollback", "--config", str(config))
    assert result.returncode == 1 and "nothing is live yet" in result.stderr


def test_deploy_restore_without_any_revision_is_a_clear_error(tmp_path):
    config = write_config(tmp_path, SMALL)
    result = cli("deploy", "restore", "--config", str(config))
    assert result.returncode == 1 and "no readable revision of the deployment state" in result.stderr

"""The ingestion DAG announces each use case's newest partition once, as an asset event carrying its date."""

from __future__ import annotations

from datetime import date

from conftest import SMALL, write_config
from dag_runs import parse, register, run

from pipelines.core.config import load_config
from pipelines.data.demo import write_partitions


def events(uri: str) -> list[tuple[dict, str, str]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == uri)
        return [(e.extra, e.source_dag_id, e.source_task_id) for e in session.scalars(query.order_by(AssetEvent.id))]


def test_each_new_partition_is_announced_once_with_its_date(airflow_db, tmp_path, monkeypatch, adult_frame):
    configs = tmp_path / "configs"
    fresh = load_config(register(configs, "fresh", write_config(tmp_path, SMALL)))
    (tmp_path / "nodata").mkdir()
    register(configs, "nodata", write_config(tmp_path / "nodata", SMALL))  # its data root does not exist yet
    write_partitions(adult_frame, fresh, date(2026, 2, 1), rows_per_day=50, days=2)
    dag = parse(monkeypatch, configs, "ingestion")

    first, states = run(dag, date(2026, 2, 3))
    assert first.state == "success"
    assert states == {"announce_fresh": "success", "announce_nodata": "skipped"}
    announced = {"use_case": "fresh", "ds": "2026-02-02", "partition": str(fresh.data.partition(date(2026, 2, 2)))}
    assert events("ct://fresh/raw") == [(announced, "ingestion", "announce_fresh")]
    assert events("ct://nodata/raw") == []

    # Nothing new: skipped, no second event for the same partition.
    again, states = run(dag, date(2026, 2, 4))
    assert states["announce_fresh"] == "skipped"
    assert len(events("ct://fresh/raw")) == 1

    # The next day's partition lands: announced.
    write_partitions(adult_frame, fresh, date(2026, 2, 3), rows_per_day=50, days=1)
    third, states = run(dag, date(2026, 2, 5))
    assert states["announce_fresh"] == "success"
    assert [e[0]["ds"] for e in events("ct://fresh/raw")] == ["2026-02-02", "2026-02-03"]

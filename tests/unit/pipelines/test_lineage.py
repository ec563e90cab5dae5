"""Dataset names every step agrees on: a consumer joins runs on equal (namespace, name)."""

import datetime as dt
import os

from pipelines.lineage import (
    DatasetRef,
    Lineage,
    endpoint,
    lake_partitions,
    location,
    model_version,
)


def test_a_local_lake_partition_is_named_by_its_absolute_path_whatever_the_root_spelling(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    relative = lake_partitions("lake", "telemetry", ["2026-11-02", dt.date(2026, 11, 1)])
    absolute = lake_partitions(
        f"file://{tmp_path}/lake/", "telemetry", ["2026-11-01", "2026-11-02"]
    )
    expected = tuple(
        DatasetRef("file", os.path.join(tmp_path, "lake", "telemetry", f"date=2026-11-0{d}"))
        for d in (1, 2)
    )
    assert relative == absolute == expected


def test_an_object_store_partition_is_named_by_bucket_and_key():
    (ref,) = lake_partitions("s3://data-lake/conveyor", "telemetry", ["2026-11-01"])
    assert ref == DatasetRef("s3://data-lake", "conveyor/telemetry/date=2026-11-01")
    assert location("gs://b/models/m1") == DatasetRef("gs://b", "models/m1")


def test_model_versions_and_endpoints():
    assert model_version("http://127.0.0.1:5000", "pm", 3) == DatasetRef(
        "mlflow://127.0.0.1:5000", "models/pm/versions/3"
    )
    local = model_version("sqlite:////srv/mlflow.db", "pm", "3")
    assert local.namespace == "mlflow:sqlite:////srv/mlflow.db"
    assert endpoint("http://10.0.0.5:8000/pm") == DatasetRef("http://10.0.0.5:8000", "/pm")


def test_lineage_survives_the_json_round_trip_of_a_job_result():
    lineage = Lineage(inputs=(DatasetRef("file", "/a"),), outputs=(DatasetRef("s3://b", "k"),))
    assert Lineage.from_dict(lineage.as_dict()) == lineage
    assert Lineage.from_dict(None) == Lineage()

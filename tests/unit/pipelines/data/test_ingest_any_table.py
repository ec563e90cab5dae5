"""The data stage knows no use case: any table's spec goes in (schema, key, time column), and
the lake gets that table's partition, typed and ordered by that spec alone."""

import datetime as dt
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pytest

from pipelines.data import lake
from pipelines.data.conform import SourceError, conform
from pipelines.data.ingest import ingest_day
from pipelines.usecase import TableSpec

DAY = dt.date(2026, 11, 3)
METERS = TableSpec(
    name="meter_readings",
    schema={
        "site": "string",
        "meter": "int64",
        "timestamp": "datetime64[us, UTC]",
        "torque_nm": "string",  # a telemetry column's name, with this table's own type
        "kwh": "float64",
    },
    key=("site", "meter", "timestamp"),
    time_column="timestamp",
    labels=("kwh",),
)


@dataclass(frozen=True)
class Meters:
    """A use case's generator, as the core calls it."""

    sites: int = 3

    def __call__(self, day):
        start = pd.Timestamp(day, tz="UTC")
        rows = [
            {
                "site": f"s{site}",
                "meter": meter,
                "timestamp": start + pd.Timedelta(hours=hour),
                "torque_nm": "n/a",
                "kwh": float(site + meter + hour),
            }
            for hour in reversed(range(24))  # out of key order on purpose
            for meter in (2, 1)
            for site in range(self.sites)
        ]
        return pd.DataFrame(rows)

    def describe(self):
        return {"generator": {"sites": self.sites}}


def test_a_non_telemetry_table_lands_in_its_own_folder_sorted_by_its_key(tmp_path):
    result = ingest_day(DAY, str(tmp_path), table=METERS, generate=Meters())
    assert result.rows == 3 * 2 * 24
    assert result.partition.endswith("/meter_readings/date=2026-11-03")
    assert lake.committed_dates(str(tmp_path), "meter_readings") == [DAY]
    assert lake.committed_dates(str(tmp_path), "telemetry") == []  # nor in another table
    rows = lake.read_table(str(tmp_path), DAY, "meter_readings")
    assert rows.schema.names == list(METERS.schema)
    assert rows.schema.field("torque_nm").type == pa.string()
    keys = list(zip(*(rows.column(c).to_pylist() for c in METERS.key), strict=True))
    assert keys == sorted(keys)
    assert result.manifest["sources"] == [{"generator": {"sites": 3}}]


def test_a_csv_is_typed_by_its_table_s_schema_not_another_use_case_s(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    frame = Meters(sites=1)(DAY)
    frame["timestamp"] = frame["timestamp"].map(lambda t: t.isoformat())
    frame.to_csv(landing / "meters-2026-11-03.csv", index=False)
    result = ingest_day(
        DAY, str(tmp_path / "lake"), table=METERS, source=".", landing_root=str(landing)
    )
    rows = lake.read_table(str(tmp_path / "lake"), DAY, "meter_readings")
    assert result.rows == 48 and set(rows.column("torque_nm").to_pylist()) == {"n/a"}


def test_exact_duplicates_by_a_three_column_key_are_dropped_and_counted():
    frame = pa.Table.from_pandas(Meters(sites=1)(DAY), preserve_index=False)
    doubled = pa.concat_tables([frame, frame.slice(0, 5)])
    rows, report = conform([("x", doubled)], METERS)
    assert rows.num_rows == frame.num_rows and report.duplicates_dropped == 5


def test_a_missing_column_of_the_table_is_named():
    frame = pa.Table.from_pandas(Meters(sites=1)(DAY).drop(columns=["kwh"]))
    with pytest.raises(SourceError, match="x: missing required column.s. kwh"):
        conform([("x", frame)], METERS)

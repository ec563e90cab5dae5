"""The PostgreSQL source against a real server (127.0.0.1:5432 on the project's machines; set
``CONVEYOR_TEST_PG_URI`` elsewhere). Each test session gets its own database, dropped after."""

import datetime as dt
import os
import time

import pytest

from pipelines.data import lake
from pipelines.data.conform import SourceError
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig, generate_day
from pipelines.usecases.predictive_maintenance.ingest import ingest_day
from pipelines.usecases.predictive_maintenance.schema import SCHEMA
from tests.services import POSTGRES_URL, unavailable

pytestmark = pytest.mark.integration

ADMIN_URI = POSTGRES_URL
SMALL = GeneratorConfig(machines=3, minutes=60)
DAY = dt.date(2026, 11, 2)
COLUMN_TYPES = {
    "string": "text",
    "datetime64[us, UTC]": "timestamptz",
    "float64": "double precision",
    "int64": "bigint",
}


@pytest.fixture(scope="module")
def telemetry_db():
    import psycopg

    try:
        admin = psycopg.connect(ADMIN_URI, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL not reachable at {ADMIN_URI}: {exc}")
    name = f"conveyor_test_{os.getpid()}_{time.time_ns() % 10**9}"
    admin.execute(f'CREATE DATABASE "{name}"')
    uri = ADMIN_URI.rsplit("/", 1)[0] + f"/{name}"
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            columns = ", ".join(f'"{c}" {COLUMN_TYPES[t]}' for c, t in SCHEMA.items())
            conn.execute(f"CREATE TABLE telemetry ({columns}, firmware text)")
            with conn.cursor().copy(f"COPY telemetry ({', '.join(SCHEMA)}) FROM STDIN") as copy:
                for day in (DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)):
                    for row in generate_day(day, SMALL).itertuples(index=False):
                        copy.write_row(row)
        yield uri
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def test_reads_exactly_the_days_window(telemetry_db, tmp_path):
    result = ingest_day(DAY, str(tmp_path), source=telemetry_db, table="telemetry")
    expected = generate_day(DAY, SMALL)
    got = lake.read_partition(tmp_path, DAY, table="telemetry")
    assert result.rows == len(expected) == len(got)
    assert got["timestamp"].min() == expected["timestamp"].min()
    assert got["timestamp"].max() == expected["timestamp"].max()
    assert (
        got["torque_nm"].tolist()
        == expected.sort_values(["machine_id", "timestamp"])["torque_nm"].tolist()
    )
    assert result.manifest["sources"][0]["window"][0].startswith("2026-11-02 00:00:00")
    assert result.manifest["report"]["unknown_columns"] == []  # only declared columns are read


def test_rerunning_the_interval_gives_the_same_partition(telemetry_db, tmp_path):
    first = ingest_day(DAY, str(tmp_path), source=telemetry_db)
    second = ingest_day(DAY, str(tmp_path), source=telemetry_db)
    assert first.manifest["sha256"] == second.manifest["sha256"]
    nxt = ingest_day(DAY + dt.timedelta(days=1), str(tmp_path), source=telemetry_db)
    assert nxt.rows == 3 * 60 and lake.committed_dates(tmp_path, table="telemetry") == [
        DAY,
        DAY + dt.timedelta(days=1),
    ]


def test_an_empty_window_is_an_error_not_an_empty_partition(telemetry_db, tmp_path):
    with pytest.raises(SourceError, match="no rows"):
        ingest_day(dt.date(2027, 1, 1), str(tmp_path), source=telemetry_db)
    assert lake.committed_dates(tmp_path, table="telemetry") == []


def test_missing_table_and_bad_credentials_are_one_line_errors(telemetry_db, tmp_path):
    with pytest.raises(SourceError, match="table nope: table does not exist"):
        ingest_day(DAY, str(tmp_path), source=telemetry_db, table="nope")
    bad = telemetry_db.replace("postgres@", "no_such_user:s3cret@")
    with pytest.raises(SourceError, match="cannot connect") as caught:
        ingest_day(DAY, str(tmp_path), source=bad)
    assert "s3cret" not in str(caught.value) and "\n" not in str(caught.value)

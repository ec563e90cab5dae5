import datetime as dt
import hashlib
import random
import signal
import subprocess
import sys
import threading
import time

import fsspec
import pytest

from pipelines.data import lake
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig
from pipelines.usecases.predictive_maintenance.ingest import ingest_day, ingest_days

DAY = dt.date(2026, 11, 2)
SMALL = GeneratorConfig(machines=3, minutes=120)


def _committed_data_is_whole(root, day) -> lake.Manifest:
    manifest = lake.read_manifest(root, day, table="telemetry")
    fs, path = fsspec.core.url_to_fs(lake.data_path(root, day, table="telemetry"))
    assert hashlib.sha256(fs.cat_file(path)).hexdigest() == manifest.sha256
    assert lake.read_table(root, day, table="telemetry").num_rows == manifest.rows
    return manifest


def test_partition_is_hive_style(tmp_path):
    assert (
        lake.partition_dir(tmp_path, DAY, table="telemetry")
        == f"{tmp_path}/telemetry/date=2026-11-02"
    )
    assert (
        lake.partition_dir("s3://bucket/lake", DAY, table="telemetry")
        == "s3://bucket/lake/telemetry/date=2026-11-02"
    )


def test_ingesting_twice_replaces_instead_of_appending(tmp_path):
    first = ingest_day(DAY, str(tmp_path), generator=SMALL, run_id="r1")
    second = ingest_day(DAY, str(tmp_path), generator=SMALL, run_id="r1")
    assert (
        len(lake.read_partition(tmp_path, DAY, table="telemetry"))
        == first.rows
        == second.rows
        == 3 * 120
    )
    assert first.manifest["sha256"] == second.manifest["sha256"]
    other = ingest_day(DAY, str(tmp_path), generator=GeneratorConfig(machines=2, minutes=60))
    assert len(lake.read_partition(tmp_path, DAY, table="telemetry")) == other.rows == 120
    files = sorted(p.name for p in (tmp_path / "telemetry" / "date=2026-11-02").iterdir())
    assert files == sorted([lake.MANIFEST_FILE, other.manifest["data_file"]])


def test_manifest_describes_the_partition(tmp_path):
    result = ingest_day(DAY, str(tmp_path), generator=SMALL, run_id="run-7")
    manifest = _committed_data_is_whole(tmp_path, DAY)
    assert manifest.rows == result.rows
    assert manifest.run_id == "run-7"
    assert manifest.schema["timestamp"] == "timestamp[us, tz=UTC]"
    assert manifest.sources[0]["generator"]["machines"] == 3
    assert manifest.ingested_at.endswith("+00:00")


def test_uncommitted_partition_is_invisible(tmp_path):
    directory = tmp_path / "telemetry" / "date=2026-11-02"
    directory.mkdir(parents=True)
    (directory / "part-0123.parquet").write_bytes(b"half a file")
    assert lake.committed_dates(tmp_path, table="telemetry") == []
    with pytest.raises(FileNotFoundError, match="no committed partition"):
        lake.read_partition(tmp_path, DAY, table="telemetry")


def test_backfill_yields_exactly_one_partition_per_date(tmp_path):
    days = [dt.date(2026, 11, d) for d in range(1, 8)]
    ingest_days(days, str(tmp_path), generator=SMALL)
    ingest_days(days[2:5], str(tmp_path), generator=SMALL)  # an overlapping re-run
    assert lake.committed_dates(tmp_path, table="telemetry") == days
    for day in days:
        assert len(lake.partition_files(tmp_path, [day], table="telemetry")) == 1
        assert len(lake.read_partition(tmp_path, day, table="telemetry")) == 3 * 120


def test_an_fsspec_url_lake_works_like_a_local_one():
    """``memory://`` stands in for ``s3://`` (no bucket can be reached here): the same code
    path, fsspec with object-store semantics (a single PUT commits)."""
    root = f"memory://lake-{time.time_ns()}"
    ingest_days([DAY, DAY + dt.timedelta(days=1)], root, generator=SMALL)
    ingest_day(DAY, root, generator=SMALL)
    assert lake.committed_dates(root, table="telemetry") == [DAY, DAY + dt.timedelta(days=1)]
    assert _committed_data_is_whole(root, DAY).rows == 3 * 120
    lake.quarantine_partition(root, DAY, {"why.json": b"{}"}, run_id="r1", table="telemetry")
    assert lake.committed_dates(root, table="telemetry") == [DAY + dt.timedelta(days=1)]


def test_quarantine_moves_data_and_attachments_and_deletes_nothing(tmp_path):
    manifest = ingest_day(DAY, str(tmp_path), generator=SMALL).manifest
    where = lake.quarantine_partition(
        tmp_path, DAY, {"validation_result.json": b"{}"}, "run/1", table="telemetry"
    )
    assert lake.committed_dates(tmp_path, table="telemetry") == []
    kept = sorted(p.name for p in (tmp_path / where).iterdir())
    assert kept == sorted([lake.MANIFEST_FILE, manifest["data_file"], "validation_result.json"])
    data = (tmp_path / where / manifest["data_file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"]


WRITER = """
import datetime as dt, sys
from pipelines.data import lake
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig, generate_day
import pyarrow as pa
day = dt.date(2026, 11, 2)
tables = [pa.Table.from_pandas(generate_day(day, GeneratorConfig(machines=m, minutes=1440)))
          for m in (40, 41)]
i = 0
while True:
    lake.write_partition(tables[i % 2], sys.argv[1], day, source="writer", table_name="telemetry")
    print("wrote", flush=True)
    i += 1
"""


def test_a_writer_killed_mid_write_never_leaves_half_a_partition(tmp_path):
    """SIGKILL a process that keeps rewriting a large partition, at random moments: after
    every kill the committed partition is whole (its bytes match its manifest's checksum)."""
    rng = random.Random(0)
    for _ in range(4):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert writer.stdout.readline().strip() == "wrote"
            time.sleep(rng.uniform(0.0, 0.6))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
        manifest = _committed_data_is_whole(tmp_path, DAY)
        assert manifest.rows in (40 * 1440, 41 * 1440)
    # The next write cleans up whatever a killed writer left behind.
    ingest_day(DAY, str(tmp_path), generator=SMALL)
    files = sorted(p.name for p in (tmp_path / "telemetry" / "date=2026-11-02").iterdir())
    assert files == sorted(
        [lake.MANIFEST_FILE, lake.read_manifest(tmp_path, DAY, table="telemetry").data_file]
    )


def test_a_week_is_its_seven_committed_days_from_monday(tmp_path):
    monday = dt.date(2026, 11, 2)
    for i in range(7):
        ingest_day(monday + dt.timedelta(days=i), str(tmp_path), generator=SMALL)
    week = lake.week_partitions(tmp_path, "2026-11-02 (W45)", table="telemetry")
    assert week == [f"2026-11-0{d}" for d in range(2, 9)]
    with pytest.raises(ValueError, match="2026-11-03 is not a Monday"):
        lake.week_partitions(tmp_path, "2026-11-03", table="telemetry")
    with pytest.raises(ValueError, match="not a YYYY-MM-DD week start"):
        lake.week_partitions(tmp_path, "W45", table="telemetry")
    lake.quarantine_partition(
        tmp_path, monday + dt.timedelta(days=4), {}, run_id="r1", table="telemetry"
    )
    with pytest.raises(ValueError, match=r"no committed partition for 2026-11-06$"):
        lake.week_partitions(tmp_path, "2026-11-02 (W45)", table="telemetry")


def test_two_runs_ingesting_the_same_date_at_once_leave_a_whole_partition(tmp_path):
    """The daily DAG and an all-in-one run may ingest one date at the same time, with other
    rows (here: other machine counts). Whatever the interleaving, the committed partition is
    one writer's whole data, and each reader gets whole data while they write."""
    import pyarrow as pa

    tables = [pa.table({"machine": [n] * (100 + n), "value": list(range(100 + n))}) for n in (1, 2)]
    errors: list[BaseException] = []

    def write(table):
        try:
            for _ in range(30):
                lake.write_partition(table, str(tmp_path), DAY, table_name="telemetry")
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(t,)) for t in tables]
    for writer in writers:
        writer.start()
    while any(w.is_alive() for w in writers):
        if (tmp_path / "telemetry" / "date=2026-11-02" / lake.MANIFEST_FILE).exists():
            assert lake.read_table(str(tmp_path), DAY, table="telemetry").num_rows in (101, 102)
    for writer in writers:
        writer.join()
    assert not errors, errors
    manifest = _committed_data_is_whole(tmp_path, DAY)
    files = sorted(p.name for p in (tmp_path / "telemetry" / "date=2026-11-02").iterdir())
    assert files == sorted([lake.MANIFEST_FILE, manifest.data_file])

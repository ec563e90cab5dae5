import datetime as dt

import pytest

from pipelines import lake
from pipelines.ingest import ingest_day, write_landing_file
from pipelines.sources.files import SourceError
from pipelines.sources.generator import GeneratorConfig

DAY = dt.date(2026, 11, 2)
SMALL = GeneratorConfig(machines=3, minutes=120)


def test_partition_is_hive_style(tmp_path):
    assert lake.partition_dir(tmp_path, DAY) == tmp_path / "telemetry" / "date=2026-11-02"


def test_ingesting_twice_replaces_instead_of_appending(tmp_path):
    first = ingest_day(DAY, str(tmp_path), generator=SMALL, run_id="r1")
    second = ingest_day(DAY, str(tmp_path), generator=SMALL, run_id="r1")
    frame = lake.read_partition(tmp_path, DAY)
    assert len(frame) == first.rows == second.rows == 3 * 120
    assert first.manifest["sha256"] == second.manifest["sha256"]
    files = sorted(p.name for p in lake.partition_dir(tmp_path, DAY).iterdir())
    assert files == [lake.MANIFEST_FILE, lake.DATA_FILE]


def test_manifest_describes_the_partition(tmp_path):
    result = ingest_day(DAY, str(tmp_path), generator=SMALL, run_id="run-7")
    manifest = lake.read_manifest(tmp_path, DAY)
    assert manifest.rows == result.rows
    assert manifest.run_id == "run-7"
    assert manifest.schema["timestamp"] == "datetime64[us, UTC]"


def test_uncommitted_partition_is_invisible(tmp_path):
    directory = lake.partition_dir(tmp_path, DAY)
    directory.mkdir(parents=True)
    (directory / ".part-0.parquet.abc.tmp").write_bytes(b"half a file")
    assert lake.committed_dates(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="no committed partition"):
        lake.read_partition(tmp_path, DAY)


def test_landing_file_round_trip(tmp_path):
    landing = write_landing_file(DAY, tmp_path / "landing", SMALL)
    result = ingest_day(DAY, str(tmp_path / "lake"), source=landing["path"])
    assert result.rows == landing["rows"]
    assert (tmp_path / "landing" / "telemetry-2026-11-02.parquet").exists()  # source kept


def test_missing_source_and_missing_column_are_one_line_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        ingest_day(DAY, str(tmp_path), source=str(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text("machine_id,timestamp\nM1,2026-11-02T00:00:00Z\n")
    with pytest.raises(SourceError, match="missing required column"):
        ingest_day(DAY, str(tmp_path / "lake"), source=str(bad))
    assert lake.committed_dates(tmp_path / "lake") == []

"""Landing-zone ingestion: every format, and every kind of bad input from the issue's list.

Bad input must give one line naming the file and the cause, leave the lake exactly as it was
(the day's previous partition still committed, same checksum) and keep the landing file.
"""

import datetime as dt
import gzip
import json
import os

import pyarrow.parquet as pq
import pytest

from pipelines.data import lake
from pipelines.data.conform import SourceError
from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig, generate_day
from pipelines.usecases.predictive_maintenance.ingest import ingest_day, write_landing_file

DAY = dt.date(2026, 11, 2)
SMALL = GeneratorConfig(machines=3, minutes=60)


@pytest.fixture
def zone(tmp_path):
    """A landing root and a lake that already holds a good partition for DAY."""
    landing, root = tmp_path / "landing", str(tmp_path / "lake")
    landing.mkdir()
    before = ingest_day(DAY, root, generator=SMALL).manifest
    return landing, root, before


def _csv(landing, name="telemetry-2026-11-02.csv"):
    """A good CSV landing file for DAY; returns its path and text."""
    path = write_landing_file(DAY, landing, SMALL, fmt="csv")["path"]
    target = landing / name
    os.replace(path, target)
    return target, target.read_text()


def _rejects(zone, path, match):
    landing, root, before = zone
    content = path.read_bytes()
    with pytest.raises(SourceError, match=match) as caught:
        ingest_day(DAY, root, source=str(path), landing_root=landing)
    message = str(caught.value)
    assert "\n" not in message and str(path.name) in message
    assert (
        lake.read_manifest(root, DAY, table="telemetry").sha256 == before["sha256"]
    )  # lake untouched
    assert path.read_bytes() == content  # source kept
    return message


@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv.gz", "jsonl", "jsonl.gz"])
def test_every_landing_format_gives_the_same_partition(tmp_path, fmt):
    landing = tmp_path / "landing"
    write_landing_file(DAY, landing, SMALL, fmt=fmt)
    result = ingest_day(DAY, str(tmp_path / "lake"), source=".", landing_root=landing)
    expected = generate_day(DAY, SMALL).sort_values(["machine_id", "timestamp"])
    got = lake.read_partition(tmp_path / "lake", DAY, table="telemetry")
    assert result.rows == len(expected)
    assert got["torque_nm"].tolist() == expected["torque_nm"].tolist()
    assert str(got["timestamp"].dtype) == "datetime64[us, UTC]"
    [source] = result.manifest["sources"]
    assert source["sha256"] and source["bytes"] > 0 and source["path"].endswith(fmt)


def test_many_files_per_day_are_one_partition_and_other_days_are_ignored(tmp_path):
    landing = tmp_path / "landing"
    frame = generate_day(DAY, SMALL)
    (landing / "gw-a").mkdir(parents=True)
    (landing / "gw-b").mkdir()
    frame.iloc[:100].to_parquet(landing / "gw-a" / "2026-11-02-part1.parquet", index=False)
    frame.iloc[100:].to_parquet(landing / "gw-b" / "2026-11-02-part2.parquet", index=False)
    write_landing_file(dt.date(2026, 11, 3), landing, SMALL)  # another day: not read
    result = ingest_day(DAY, str(tmp_path / "lake"), source=".", landing_root=landing)
    assert result.rows == len(frame)
    assert len(result.manifest["sources"]) == 2


def test_reingesting_the_same_files_gives_the_same_partition(tmp_path):
    landing = tmp_path / "landing"
    write_landing_file(DAY, landing, SMALL, fmt="csv.gz")
    first = ingest_day(DAY, str(tmp_path / "lake"), source=".", landing_root=landing)
    second = ingest_day(DAY, str(tmp_path / "lake"), source=".", landing_root=landing)
    assert first.manifest["sha256"] == second.manifest["sha256"]
    files = sorted(os.listdir(lake.partition_dir(tmp_path / "lake", DAY, table="telemetry")))
    assert files == [lake.MANIFEST_FILE, first.manifest["data_file"]]


def test_empty_file(zone):
    path = zone[0] / "telemetry-2026-11-02.csv"
    path.write_bytes(b"")
    _rejects(zone, path, "file is empty")


def test_header_only_csv(zone):
    path, text = _csv(zone[0])
    path.write_text(text.splitlines()[0] + "\n")
    _rejects(zone, path, "no rows")


def test_truncated_gzip(zone):
    path = zone[0] / "telemetry-2026-11-02.csv.gz"
    data = gzip.compress(_csv(zone[0], "x.csv")[1].encode())
    (zone[0] / "x.csv").unlink()
    path.write_bytes(data[: len(data) // 2])
    _rejects(zone, path, "corrupt or truncated gzip")


def test_corrupt_parquet(zone):
    path = zone[0] / "telemetry-2026-11-02.parquet"
    generate_day(DAY, SMALL).to_parquet(path, index=False)
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\x00" * 64 + data[-200:])
    _rejects(zone, path, "unreadable parquet")


def test_wrong_delimiter(zone):
    path, text = _csv(zone[0])
    path.write_text(text.replace(",", ";"))
    _rejects(zone, path, "wrong delimiter")


def test_wrong_encoding(zone):
    path, text = _csv(zone[0])
    path.write_bytes(text.replace("M0000", "Mé000").encode("latin-1"))
    _rejects(zone, path, "not UTF-8")


def test_wrong_type_in_a_numeric_column(zone):
    path, text = _csv(zone[0])
    lines = text.splitlines()
    header = lines[0].split(",")
    row = lines[3].split(",")
    row[header.index("torque_nm")] = "abc"
    lines[3] = ",".join(row)
    path.write_text("\n".join(lines) + "\n")
    message = _rejects(zone, path, "torque_nm")
    assert "abc" in message


def test_missing_required_column(zone):
    path = zone[0] / "telemetry-2026-11-02.parquet"
    generate_day(DAY, SMALL).drop(columns=["torque_nm"]).to_parquet(path, index=False)
    _rejects(zone, path, "missing required column.*torque_nm")


def test_source_path_that_does_not_exist(zone):
    landing, root, before = zone
    with pytest.raises(SourceError, match="nope.csv: source path does not exist"):
        ingest_day(DAY, root, source="nope.csv", landing_root=landing)
    assert lake.read_manifest(root, DAY, table="telemetry").sha256 == before["sha256"]


def test_path_that_escapes_the_landing_root(zone, tmp_path):
    landing, root, before = zone
    outside = tmp_path / "secret-2026-11-02.parquet"
    generate_day(DAY, SMALL).to_parquet(outside, index=False)
    (landing / "link").symlink_to(tmp_path)
    for source in ("../secret-2026-11-02.parquet", str(outside), "link"):
        with pytest.raises(SourceError, match="escapes the landing root"):
            ingest_day(DAY, root, source=source, landing_root=landing)
    (landing / "link").unlink()
    (landing / "telemetry-2026-11-02.parquet").symlink_to(outside)  # a file link leading out
    with pytest.raises(SourceError, match="escapes the landing root"):
        ingest_day(DAY, root, source=".", landing_root=landing)
    assert lake.read_manifest(root, DAY, table="telemetry").sha256 == before["sha256"]


def test_naive_timestamps_are_an_error_and_mixed_offsets_are_normalised(zone):
    path, text = _csv(zone[0])
    lines = text.splitlines()
    naive = lines[:2] + [lines[2].replace("+00:00", "")] + lines[3:]
    path.write_text("\n".join(naive) + "\n")
    _rejects(zone, path, "timestamp.*zone offset")

    # The same instant written with a +02:00 offset lands on the same UTC timestamp.
    shifted = lines[:2] + [lines[2].replace("T00:01:00+00:00", "T02:01:00+02:00")] + lines[3:]
    assert shifted != lines
    path.write_text("\n".join(shifted) + "\n")
    landing, root, _ = zone
    ingest_day(DAY, root, source=str(path), landing_root=landing)
    expected = generate_day(DAY, SMALL).sort_values(["machine_id", "timestamp"])
    got = lake.read_partition(root, DAY, table="telemetry")
    assert got["timestamp"].tolist() == expected["timestamp"].tolist()


def test_extra_columns_are_reported_and_dropped(zone):
    landing, root, _ = zone
    path = landing / "telemetry-2026-11-02.parquet"
    generate_day(DAY, SMALL).assign(firmware="2.4").to_parquet(path, index=False)
    result = ingest_day(DAY, root, source=str(path), landing_root=landing)
    assert result.manifest["report"]["unknown_columns"] == ["firmware"]
    data = lake.partition_dir(root, DAY, table="telemetry") + "/" + result.manifest["data_file"]
    assert "firmware" not in pq.read_schema(data).names


def test_exact_duplicate_rows_are_dropped_and_counted(zone):
    landing, root, _ = zone
    frame = generate_day(DAY, SMALL)
    path = landing / "telemetry-2026-11-02.parquet"
    frame.iloc[list(range(len(frame))) + [0, 1, 2]].to_parquet(path, index=False)
    result = ingest_day(DAY, root, source=str(path), landing_root=landing)
    assert result.rows == len(frame)
    assert result.manifest["report"]["duplicates_dropped"] == 3
    assert json.loads(json.dumps(result.manifest)) == result.manifest  # plain JSON


def test_wrong_encoding_in_json_lines(zone):
    path = zone[0] / "telemetry-2026-11-02.jsonl"
    path.write_bytes('{"machine_id": "Mé0001"}\n'.encode("latin-1"))
    _rejects(zone, path, "not UTF-8")


def test_a_run_covers_its_days_or_an_explicit_range():
    from pipelines.data.ingest import days_to_ingest

    last = dt.date(2026, 11, 7)
    assert days_to_ingest(last, 3) == [dt.date(2026, 11, d) for d in (5, 6, 7)]
    assert days_to_ingest(last, 3, "2026-10-30", "2026-11-01") == [
        dt.date(2026, 10, 30),
        dt.date(2026, 10, 31),
        dt.date(2026, 11, 1),
    ]
    with pytest.raises(ValueError, match="end_date 2026-10-01 is before start_date"):
        days_to_ingest(last, 3, "2026-11-01", "2026-10-01")
    with pytest.raises(ValueError, match="give both"):
        days_to_ingest(last, 3, "2026-11-01", None)
    with pytest.raises(ValueError, match="spans 61 days"):
        days_to_ingest(last, 3, "2026-09-01", "2026-10-31")

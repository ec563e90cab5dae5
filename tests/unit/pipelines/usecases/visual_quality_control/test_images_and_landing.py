"""Visual quality control without the stack: the generator, the image checks, the landing
sources (ingested and validated for real, into a temporary lake), the request parsing, and the
classifier's threshold and lot-aware split."""

import base64
import datetime as dt
import io
import json
import struct
import zipfile
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.catalog import get_use_case, learner_of
from pipelines.data.conform import SourceError
from pipelines.data.ingest import ingest_day, source_arguments
from pipelines.data.validation import ValidationFailed, suite_path_for, validate_partition
from pipelines.ml.evaluation import TimeSplit
from pipelines.usecase import RequestError
from pipelines.usecases.visual_quality_control.generator import GeneratorConfig, generate_day
from pipelines.usecases.visual_quality_control.images import ImageError, decode, encode_png
from pipelines.usecases.visual_quality_control.landing import write_dataset

DAY = dt.date(2026, 11, 1)
USE_CASE = get_use_case("visual_quality_control")
LEARNER = learner_of(USE_CASE)
NOW = dt.datetime(2026, 11, 3, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def day_frame():
    return generate_day(DAY, GeneratorConfig(images=120, defect_rate=0.3))


def _png(size=(64, 64), mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(width=100_000, height=100_000) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


def test_the_generator_is_deterministic_and_draws_the_asked_defect_rate():
    a = generate_day(DAY, GeneratorConfig(images=400, defect_rate=0.25))
    b = generate_day(DAY, GeneratorConfig(images=400, defect_rate=0.25))
    assert a["sha256"].tolist() == b["sha256"].tolist()
    assert 0.17 < a["defect"].mean() < 0.33
    assert set(a["label"]) == {"ok", "scratch", "spot", "crack", "stain"}
    assert a["sha256"].is_unique
    other_day = generate_day(DAY + dt.timedelta(days=1), GeneratorConfig(images=400))
    assert not set(a["sha256"]) & set(other_day["sha256"])


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty"),
        (b"GIF89a not really", "not an image"),
        (_png()[:60], "truncated"),
        (_bomb_png(), "pixels"),
        (None, None),  # a 16-bit image, made in the test
    ],
)
def test_each_bad_image_is_refused_with_a_one_line_cause(data, says):
    if data is None:
        buffer = io.BytesIO()
        Image.new("I;16", (8, 8)).save(buffer, format="PNG")
        data, says = buffer.getvalue(), "mode"
    with pytest.raises(ImageError, match=says) as caught:
        decode(data, "part.png")
    assert "\n" not in str(caught.value) and "part.png" in str(caught.value)


def test_a_good_image_of_another_size_is_read_as_the_model_reads_it():
    assert decode(_png((200, 120), "RGB")).shape == (64, 64)


@pytest.mark.parametrize("layout", ["folders", "csv", "zip", "tar.gz"])
def test_shipped_datasets_ingest_and_validate(tmp_path, day_frame, layout):
    landing = tmp_path / "landing"
    name = f"inspection-{DAY}" + ("" if layout in ("folders", "csv") else f".{layout}")
    write_dataset(day_frame, landing / name, layout)
    lake = tmp_path / "lake"
    result = ingest_day(
        DAY,
        str(lake),
        table=USE_CASE.table,
        source=name,
        landing_root=landing,
        **{k: v for k, v in source_arguments(USE_CASE, {}).items() if k != "generate"},
    )
    assert result.rows == len(day_frame)
    report = validate_partition(
        str(lake),
        DAY,
        tmp_path / "results",
        suite_path_for(USE_CASE),
        table="product_images",
        now=NOW,
    )
    assert report.success, report.critical_failures


def _zip(path, members: dict):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ({"ok/a.png": _png(), "ok/notes.txt": b"hello"}, "not an image"),
        ({"ok/a.png": _png()[:60]}, "truncated"),
        ({"ok/a.png": _bomb_png()}, "pixels"),
        ({"rust/a.png": _png()}, "label 'rust'"),
        ({}, "no images"),
        ({"../ok/a.png": _png()}, "escapes the archive"),
    ],
)
def test_bad_landing_input_is_refused_and_nothing_is_written(tmp_path, members, says):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    landing.mkdir()
    source = landing / f"batch-{DAY}.zip"
    _zip(source, members)
    before = source.read_bytes()
    with pytest.raises(SourceError, match=says) as caught:
        ingest_day(
            DAY,
            str(lake),
            table=USE_CASE.table,
            source=source.name,
            landing_root=landing,
            read_landing=source_arguments(USE_CASE, {})["read_landing"],
        )
    assert "\n" not in str(caught.value)
    assert source.read_bytes() == before  # the source is left as it was
    assert not lake.exists() or not any(lake.rglob("*.parquet"))


def test_a_source_outside_the_landing_root_is_refused(tmp_path):
    (tmp_path / "landing").mkdir()
    with pytest.raises(SourceError, match="escapes the landing root"):
        ingest_day(
            DAY,
            str(tmp_path / "lake"),
            table=USE_CASE.table,
            source="../elsewhere",
            landing_root=tmp_path / "landing",
            read_landing=source_arguments(USE_CASE, {})["read_landing"],
        )


def test_a_partition_of_wrong_sized_images_fails_validation_and_is_quarantined(tmp_path, day_frame):
    landing = tmp_path / "landing"
    bad = day_frame.copy()
    bad["image"] = [_png((80, 80))] * len(bad)
    bad["image_id"] = [f"x{i}" for i in range(len(bad))]
    write_dataset(bad.iloc[:20], landing / f"big-{DAY}", "folders")
    lake = tmp_path / "lake"
    ingest_day(
        DAY,
        str(lake),
        table=USE_CASE.table,
        source=f"big-{DAY}",
        landing_root=landing,
        read_landing=source_arguments(USE_CASE, {})["read_landing"],
    )
    with pytest.raises(ValidationFailed) as caught:
        validate_partition(
            str(lake),
            DAY,
            tmp_path / "results",
            suite_path_for(USE_CASE),
            table="product_images",
            now=NOW,
        )
    failures = json.dumps(caught.value.report.critical_failures)
    assert '"width"' in failures and '"height"' in failures, failures


def _multipart(files: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    import httpx

    request = httpx.Request(
        "POST", "http://x/", files=[("file", (n, d, "image/png")) for n, d in files]
    )
    return request.headers["content-type"], request.read()


@pytest.mark.parametrize(
    ("content_type", "body", "status", "says"),
    [
        ("image/png", b"", 422, "empty"),
        ("image/png", b"not an image", 422, "not an image"),
        ("image/png", _png()[:60], 422, "truncated"),
        ("image/png", _bomb_png(), 413, "pixels"),
        ("image/png", b"\x89PNG" + b"\0" * 1_100_000, 413, "bytes"),
        ("text/csv", b"a,b", 415, "content type"),
        ("application/json", b'{"records": [{"image_base64": "%%"}]}', 422, "base64"),
        ("application/json", b'{"records": [{"picture": "x"}]}', 422, "image_base64"),
        (*_multipart([(f"{i}.png", _png()) for i in range(65)]), 413, "at most 64"),
        ("multipart/form-data", b"--x\r\n", 422, "boundary"),
    ],
)
def test_each_bad_request_gets_its_status_and_a_one_line_cause(content_type, body, status, says):
    with pytest.raises(RequestError, match=says) as caught:
        LEARNER.parse_request(content_type, body)
    assert caught.value.status == status
    assert "\n" not in str(caught.value)


def test_a_request_reads_the_same_pixels_however_the_image_is_sent():
    png = encode_png(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64))
    raw = LEARNER.parse_request("image/png", png)
    multipart = LEARNER.parse_request(*_multipart([("a.png", png), ("b.png", png)]))
    body = json.dumps({"records": [{"image_base64": base64.b64encode(png).decode()}]}).encode()
    as_json = LEARNER.parse_request("application/json", body)
    assert len(multipart) == 2
    for records in (multipart[:1], as_json):
        assert np.array_equal(records[0]["pixels"], raw[0]["pixels"])


def test_a_served_image_is_captured_as_the_suite_measures_it_at_ingest(day_frame):
    """Served traffic is checked like the lake's rows: the same measurements, from the same
    code, of the same image; the image itself is kept for the share its hash selects."""
    measured = ["width", "height", "channels", "brightness", "contrast", "focus", "sha256"]
    kept = 0
    for row in day_frame.head(40).itertuples():
        (record,) = LEARNER.parse_request("image/png", row.image)
        fields = LEARNER.capture_fields(record)
        assert {k: fields[k] for k in measured} == {k: getattr(row, k) for k in measured}
        if "image" in fields:
            kept += 1
            assert np.array_equal(decode(fields["image"]), record["pixels"])
    assert 0 < kept < 20  # about capture_image_rate (0.1) of them


def test_the_split_never_cuts_a_lot(day_frame):
    frame = pd.concat(
        [generate_day(DAY + dt.timedelta(days=d), GeneratorConfig(images=90)) for d in range(3)]
    )
    split = TimeSplit.of(frame, "captured_at", "lot")
    train, validation, holdout = (
        set(s(frame)["lot"]) for s in (split.train, split.validation, split.holdout)
    )
    assert train and validation and holdout
    assert not train & validation and not train & holdout and not validation & holdout


def test_the_threshold_keeps_false_alarms_within_the_bound():
    rng = np.random.default_rng(0)
    normal = rng.uniform(0.0, 0.6, 1000)
    abnormal = rng.uniform(0.3, 1.0, 200)
    alarm = np.concatenate([normal, abnormal])
    scores = np.column_stack(
        [1 - alarm, alarm, np.zeros_like(alarm), np.zeros_like(alarm), np.zeros_like(alarm)]
    )
    targets = np.array([0] * 1000 + [1] * 200, dtype=np.float32)
    threshold = LEARNER.choose_threshold(scores, targets)
    metrics = LEARNER.evaluate(scores, targets, threshold)
    assert metrics["false_alarm_rate"] <= LEARNER.max_false_alarm
    assert 0.5 < metrics["defect_recall"] < 1.0
    assert metrics["confusion"][0][0] + metrics["confusion"][0][1] == 1000

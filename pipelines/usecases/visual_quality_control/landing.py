"""Landing-zone images, laid out the way inspection datasets are shipped.

A source (inside the landing root, as for every use case) is a folder or a ``.zip``, ``.tar``,
``.tar.gz`` / ``.tgz`` archive holding PNG or JPEG files, labelled either by their folder
(MVTec AD style: ``<class>/<file>``, with ``good`` meaning ``ok``) or by a ``labels.csv``
(columns ``file,label`` and, optionally, ``captured_at``, ``line``, ``camera``, ``lot``,
``product_type``). A folder whose entries carry dates (``2026-11-01/``,
``lot-2026-11-01.zip``) yields the day's entries only.

Nothing is taken on trust: a member path escaping its archive or the landing root, a link
inside an archive, a file that is not an image, a truncated image, a decompression bomb
(too many pixels, or an archive member or archive larger than the limits), an unknown label,
a capture time outside the day, an empty folder or archive: each refuses the whole source
with one line naming the file and the cause. Everything is decoded before anything is
written, so nothing half-written reaches the lake; the source is only read.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pandas as pd
import pyarrow as pa

from pipelines.data.conform import SourceError, arrow_schema
from pipelines.data.sources.files import SourceFile, resolve_in_landing
from pipelines.usecase import TableSpec
from pipelines.usecases.visual_quality_control.images import (
    MAX_IMAGE_BYTES,
    ImageError,
    measure,
    open_image,
    sha256,
    to_pixels,
)
from pipelines.usecases.visual_quality_control.schema import CLASSES, LABEL_ALIASES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
LABELS_FILE = "labels.csv"
MAX_ARCHIVE_BYTES = 8_000_000_000
"""Uncompressed bytes an archive may expand to (a zip bomb expands to far more)."""
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _member_path(origin: str, name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise SourceError(f"{origin}: member {name!r} escapes the archive")
    return path


def _zip_members(path: Path) -> list[tuple[PurePosixPath, bytes]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{path}: not a readable zip archive ({exc})") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        _check_sizes(path, [(i.filename, i.file_size) for i in infos])
        out = []
        for info in infos:
            member = _member_path(str(path), info.filename)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise SourceError(f"{path}: member {info.filename!r} is a symbolic link")
            try:
                out.append((member, archive.read(info)))
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise SourceError(f"{path}: member {info.filename!r} is corrupt ({exc})") from None
    return out


def _tar_members(path: Path) -> list[tuple[PurePosixPath, bytes]]:
    try:
        archive = tarfile.open(path)
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"{path}: not a readable tar archive ({exc})") from None
    with archive:
        try:
            members = [m for m in archive.getmembers() if not m.isdir()]
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise SourceError(f"{path}: truncated or corrupt tar archive ({exc})") from None
        for member in members:
            if not member.isfile():
                raise SourceError(f"{path}: member {member.name!r} is a link or device, not a file")
        _check_sizes(path, [(m.name, m.size) for m in members])
        out = []
        for member in members:
            name = _member_path(str(path), member.name)
            try:
                out.append((name, archive.extractfile(member).read()))
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise SourceError(f"{path}: member {member.name!r} is corrupt ({exc})") from None
    return out


def _check_sizes(path: Path, sizes: list[tuple[str, int]]) -> None:
    for name, size in sizes:
        if size > MAX_IMAGE_BYTES and not name.endswith(LABELS_FILE):
            raise SourceError(
                f"{path}: member {name!r} expands to {size} bytes, over the limit of"
                f" {MAX_IMAGE_BYTES} (an archive bomb?)"
            )
    total = sum(size for _, size in sizes)
    if total > MAX_ARCHIVE_BYTES:
        raise SourceError(
            f"{path}: expands to {total} bytes, over the limit of {MAX_ARCHIVE_BYTES}"
        )


def _folder_members(folder: Path, root: Path) -> list[tuple[PurePosixPath, bytes]]:
    out = []
    for path in sorted(p for p in folder.rglob("*") if not p.is_dir()):
        if root not in path.resolve().parents:  # a symlink out of the landing zone
            raise SourceError(f"{path}: path escapes the landing root {root}")
        out.append((PurePosixPath(path.relative_to(folder).as_posix()), path.read_bytes()))
    return out


def _members(path: Path, root: Path) -> list[tuple[PurePosixPath, bytes]]:
    if path.is_dir():
        return _folder_members(path, root)
    if _is_archive(path):
        name = path.name.lower()
        return _zip_members(path) if name.endswith(".zip") else _tar_members(path)
    raise SourceError(
        f"{path}: not a folder or an archive ({', '.join(ARCHIVE_SUFFIXES)}) of images"
    )


def _label(origin: str, name: str, given: str) -> str:
    label = LABEL_ALIASES.get(given.strip().lower(), given.strip().lower())
    if label not in CLASSES:
        raise SourceError(
            f"{origin}: {name}: label {given!r} is not one of {', '.join(CLASSES)}"
            f" (or {', '.join(LABEL_ALIASES)})"
        )
    return label


def _labels_csv(origin: str, data: bytes) -> dict[str, dict]:
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{origin}: {LABELS_FILE} is not UTF-8 CSV ({exc})") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise SourceError(f"{origin}: {LABELS_FILE} needs the columns file,label")
    return {str(PurePosixPath(row["file"].strip())): row for row in rows}


def _captured_at(origin: str, name: str, value: str | None, day: dt.date, index: int):
    start = pd.Timestamp(day, tz="UTC")
    if not value:
        return start + pd.Timedelta(seconds=index)  # ordered by name, inside the day
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        raise SourceError(f"{origin}: {name}: captured_at {value!r} is not a timestamp") from None
    if stamp.tzinfo is None:
        raise SourceError(f"{origin}: {name}: captured_at {value!r} has no time zone")
    stamp = stamp.tz_convert("UTC")
    if not start <= stamp < start + pd.Timedelta(days=1):
        raise SourceError(f"{origin}: {name}: captured_at {value} is not on {day}")
    return stamp


def read_dataset(path: Path, root: Path, day: dt.date) -> list[dict]:
    """The rows of one folder or archive of labelled images."""
    origin = str(path)
    members = _members(path, root)
    labels_data = [data for name, data in members if name.name == LABELS_FILE]
    labels = _labels_csv(origin, labels_data[0]) if labels_data else None
    images = [(name, data) for name, data in members if name.name != LABELS_FILE]
    if not images:
        raise SourceError(f"{origin}: no images")
    rows = []
    for index, (name, data) in enumerate(images):
        text = str(name)
        if not text.lower().endswith(IMAGE_SUFFIXES):
            raise SourceError(f"{origin}: {text}: not an image (PNG or JPEG expected)")
        if labels is not None:
            if text not in labels:
                raise SourceError(f"{origin}: {text}: not listed in {LABELS_FILE}")
            meta = labels[text]
        elif len(name.parts) >= 2:
            meta = {"label": name.parts[-2]}
        else:
            raise SourceError(
                f"{origin}: {text}: no label (put it in a <class>/ folder or list it in"
                f" {LABELS_FILE})"
            )
        label = _label(origin, text, meta["label"])
        try:
            image = open_image(data, f"{origin}: {text}")
        except ImageError as exc:
            raise SourceError(str(exc)) from None
        pixels = to_pixels(image)
        rows.append(
            {
                "image_id": f"{path.name}/{text}",
                "captured_at": _captured_at(origin, text, meta.get("captured_at"), day, index),
                "line": meta.get("line") or "landing",
                "camera": meta.get("camera") or "landing",
                "lot": meta.get("lot") or path.name,
                "product_type": meta.get("product_type") or "unknown",
                "label": label,
                "defect": int(label != "ok"),
                **measure(image, pixels),
                "sha256": sha256(data),
                "image": data,
            }
        )
    return rows


def _day_entries(source: Path, day: dt.date) -> list[Path]:
    """``source`` itself, or, when it holds dated entries, those of ``day``."""
    if not source.is_dir():
        return [source]
    entries = sorted(source.iterdir())
    dated = [p for p in entries if DATE.search(p.name)]
    if not dated:
        return [source]
    mine = [p for p in dated if day.isoformat() in p.name]
    if not mine:
        raise SourceError(f"{source}: no entry for {day.isoformat()}")
    return mine


def _digest(path: Path) -> SourceFile:
    if path.is_dir():
        digest, size = hashlib.sha256(), 0
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            data = file.read_bytes()
            digest.update(file.relative_to(path).as_posix().encode() + b"\0" + data)
            size += len(data)
        return SourceFile(str(path), digest.hexdigest(), size)
    data = path.read_bytes()
    return SourceFile(str(path), hashlib.sha256(data).hexdigest(), len(data))


def read_landing(source: str | Path, landing_root: str | Path, day: dt.date, spec: TableSpec):
    """The day's images under ``source`` as (origin, table) pairs and the files read
    (``UseCase.landing_reader``)."""
    root = Path(landing_root).resolve()
    tables, files = [], []
    for path in _day_entries(resolve_in_landing(source, landing_root), day):
        rows = read_dataset(path, root, day)
        frame = pd.DataFrame(rows)
        frame["lot_images"] = frame.groupby("lot")["image_id"].transform("count")
        schema = arrow_schema(spec)
        tables.append((str(path), pa.Table.from_pandas(frame[schema.names], schema=schema)))
        files.append(_digest(path))
    return tables, files


def write_dataset(frame: pd.DataFrame, out: Path, layout: str = "folders") -> Path:
    """Rows of the generator as a shipped dataset: ``folders`` (``<class>/<id>.png``),
    ``csv`` (images plus ``labels.csv``), or an archive of the folders (``zip``, ``tar.gz``).
    For demos and tests; the archive is written whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    members = {
        f"{label}/{image_id.replace('/', '_')}.png": data
        for label, image_id, data in zip(
            frame["label"], frame["image_id"], frame["image"], strict=True
        )
    }
    if layout == "csv":
        members = {f"{k.split('/', 1)[1]}": v for k, v in members.items()}
        lines = ["file,label,captured_at,line,camera,lot,product_type"]
        for name, row in zip(members, frame.itertuples(), strict=True):
            lines.append(
                f"{name},{row.label},{row.captured_at.isoformat()},{row.line},{row.camera},"
                f"{row.lot},{row.product_type}"
            )
        members[LABELS_FILE] = ("\n".join(lines) + "\n").encode()
    if layout in ("folders", "csv"):
        for name, data in members.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
        return out
    partial = out.with_name(f".{out.name}.partial")
    if layout == "zip":
        with zipfile.ZipFile(partial, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
    elif layout == "tar.gz":
        with tarfile.open(partial, "w:gz") as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    else:
        raise ValueError(f"layout must be folders, csv, zip or tar.gz: {layout}")
    partial.replace(out)
    return out

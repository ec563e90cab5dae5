"""What a pipeline step read and wrote, named the way OpenLineage names datasets.

A dataset is a ``namespace`` (where it lives: ``file``, ``s3://bucket``, an MLflow tracking
server, an HTTP endpoint's host) plus a ``name`` inside it. Consumers (Marquez, DataHub,
OpenMetadata) join the runs of different tools on equal (namespace, name) pairs, so every
step that touches a thing must name it the same way: that is the reason these builders exist
and the steps do not format names themselves. The chain a pipeline run leaves is

    lake partition ─ingest→ ─validate→ ─train→ model directory ─register→ model version
    ─deploy→ endpoint

Plain data: the Airflow provider (``conveyor_provider.lineage``) turns a ``Lineage`` into the
OpenLineage facets of the task's events; nothing here imports Airflow or OpenLineage.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class DatasetRef:
    namespace: str
    name: str


@dataclass(frozen=True)
class Lineage:
    """The datasets a step read (``inputs``) and wrote (``outputs``)."""

    inputs: tuple[DatasetRef, ...] = ()
    outputs: tuple[DatasetRef, ...] = ()

    def as_dict(self) -> dict:
        return {
            "inputs": [[d.namespace, d.name] for d in self.inputs],
            "outputs": [[d.namespace, d.name] for d in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> Lineage:
        data = data or {}
        return cls(
            inputs=tuple(DatasetRef(*pair) for pair in data.get("inputs", ())),
            outputs=tuple(DatasetRef(*pair) for pair in data.get("outputs", ())),
        )


def location(path_or_url: str | os.PathLike) -> DatasetRef:
    """A file or folder: ``file`` + its absolute path for a local one (as Airflow's ``file://``
    assets are translated), ``<scheme>://<bucket>`` + the key for an object store."""
    text = str(path_or_url)
    parts = urlsplit(text)
    if parts.scheme and parts.scheme != "file":
        return DatasetRef(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/"))
    path = parts.path if parts.scheme == "file" else text
    return DatasetRef("file", os.path.abspath(path))


def lake_partitions(
    lake_root: str | os.PathLike, table: str, dates: Iterable[str | dt.date]
) -> tuple[DatasetRef, ...]:
    """One dataset per day's partition of ``table`` (its ``date=YYYY-MM-DD`` folder)."""
    from pipelines.data.lake import partition_dir

    days = sorted({dt.date.fromisoformat(str(d)) for d in dates})
    return tuple(location(partition_dir(lake_root, day, table)) for day in days)


def model_version(tracking_uri: str, name: str, version: str | int) -> DatasetRef:
    """A registered model version, in its registry's namespace."""
    return DatasetRef(_registry_namespace(tracking_uri), f"models/{name}/versions/{version}")


def endpoint(url: str) -> DatasetRef:
    """An HTTP endpoint: ``http://host:port`` + the route."""
    parts = urlsplit(url)
    return DatasetRef(f"{parts.scheme}://{parts.netloc}", parts.path or "/")


def _registry_namespace(tracking_uri: str) -> str:
    """``mlflow://host:port`` for a tracking server; for a local store (a path, ``file:``,
    ``sqlite:``) the store's location, so two machines' local registries never collide."""
    parts = urlsplit(tracking_uri)
    if parts.scheme in ("http", "https"):
        return f"mlflow://{parts.netloc}"
    return f"mlflow:{tracking_uri}"

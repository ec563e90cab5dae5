"""The use-case contract: what one pipeline declares, in one typed object, so the core can run
its whole lifecycle (schedules, validation, training on Ray, the registry and promotion gate,
canary and rollback, reports).

A use case is a folder ``pipelines/usecases/<name>/`` whose package exposes ``USE_CASE``, a
``UseCase``, plus its suites in ``data_checks/<name>/``; or the same object shipped in a
package of its own and registered under the entry-point group ``conveyor.use_cases``
(``pipelines.catalog``). The spec is data, cheap to import where the scheduler parses DAGs:
heavy code (a generator, a model) is named by import path (``"package.module:function"``)
and imported inside the task that calls it. Defaults come from here: a use case writes only
what differs.

Everything deployed is named after the use case (``name``): the DAG ids, the validated-data
asset, the MLflow model, the Serve application and its route. Predictive maintenance keeps
the DAG ids it had before the contract through ``DagIds``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

NAME = re.compile(r"^[a-z][a-z0-9_]{1,47}$")


class RequestError(ValueError):
    """A prediction request the endpoint refuses (``Learner.parse_request``): ``status``
    (4xx) and a one-line cause."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class UseCaseError(ValueError):
    """A use case's spec is invalid; the message names the use case and the field."""


@dataclass(frozen=True)
class TableSpec:
    """The lake table a use case ingests: one Parquet partition per day."""

    name: str
    """The table's folder in the lake (``<lake>/<name>/date=YYYY-MM-DD/``)."""
    schema: Mapping[str, str]
    """Column -> pandas dtype, in the lake's column order."""
    key: tuple[str, ...]
    """Columns that identify a row (at most one row per key)."""
    time_column: str
    """The timestamp that puts a row in its day's partition."""
    labels: tuple[str, ...] = ()
    """Label columns (the first is the training target)."""
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """What a column can physically hold; outside is a fault, not a rare event."""

    def check(self, owner: str) -> None:
        missing = [c for c in (*self.key, self.time_column, *self.labels) if c not in self.schema]
        if missing:
            raise UseCaseError(
                f"use case {owner}: table {self.name!r} names column(s) not in its schema: "
                f"{', '.join(missing)}"
            )


@dataclass(frozen=True)
class Gate:
    """The promotion gate: which holdout metric decides, which way is better, the bar a new
    model must pass, and the margin by which it must beat the champion; ``floors``, other
    holdout metrics (higher is better) that must also reach a minimum, so one metric bought
    at the expense of another never promotes (recall bought at the cost of macro-F1)."""

    metric: str = "f1"
    higher_is_better: bool = True
    bar: float = 0.8
    margin: float = 0.01
    floors: Mapping[str, float] = field(default_factory=dict)

    def passes(self, value: float) -> bool:
        return value >= self.bar if self.higher_is_better else value <= self.bar

    def below_floors(self, metrics: Mapping[str, float]) -> list[str]:
        """``macro_f1 0.850 < floor 0.900`` for each floor ``metrics`` misses (a missing
        metric misses its floor)."""
        return [
            f"{name} {metrics.get(name, float('nan')):.3f} < floor {floor:.3f}"
            for name, floor in self.floors.items()
            if not metrics.get(name, float("nan")) >= floor
        ]

    def explain_floors(self, metrics: Mapping[str, float]) -> str:
        """``, macro_f1 0.996 >= floor 0.900``: the floors a model reached, for logs."""
        return "".join(
            f", {name} {metrics[name]:.3f} >= floor {floor:.3f}"
            for name, floor in self.floors.items()
            if name in metrics
        )

    def beats(self, challenger: float, champion: float) -> bool:
        if self.higher_is_better:
            return challenger >= champion + self.margin
        return challenger <= champion - self.margin

    @property
    def label(self) -> str:
        """The metric as people write it: ``F1``, ``MAE``, ``defect_recall``."""
        return self.metric.upper() if len(self.metric) <= 3 else self.metric

    def explain(self, value: float) -> str:
        """``holdout F1 0.720 < bar 0.800``: the gate's verdict on one value, for logs."""
        ok = self.passes(value)
        sign = (">=" if ok else "<") if self.higher_is_better else ("<=" if ok else ">")
        return f"holdout {self.label} {value:.3f} {sign} bar {self.bar:.3f}"

    def with_bar(
        self,
        bar: float | None = None,
        margin: float | None = None,
        floors: Mapping[str, float] | None = None,
    ) -> Gate:
        """This gate with a run's own bar, margin and floors (the DAG's Params)."""
        floors = self.floors if floors is None else floors
        return replace(
            self,
            bar=self.bar if bar is None else float(bar),
            margin=self.margin if margin is None else float(margin),
            floors={name: float(floor) for name, floor in floors.items()},
        )


@dataclass(frozen=True)
class DriftPolicy:
    """How served traffic is judged against the champion's training data
    (``pipelines.monitoring``): a feature drifts when its PSI reaches ``psi_threshold`` and
    its two-sample test's p-value is below ``alpha``; fewer than ``min_rows`` captured rows
    in the window give no verdict. With ``retrain``, drift requests a retraining run (the
    drift asset's event), which goes through the same promotion gate."""

    psi_threshold: float = 0.2
    alpha: float = 0.01
    min_rows: int = 200
    window_hours: int = 24
    """The served traffic each monitoring run reads: the hours up to its data interval's end."""
    retrain: bool = True
    reference_rows: int = 20_000
    """Rows sampled from the champion's training partitions as the reference."""

    def __post_init__(self) -> None:
        if self.psi_threshold <= 0 or not 0 < self.alpha < 1:
            raise UseCaseError(
                f"drift policy: need psi_threshold > 0 and alpha in (0, 1), got "
                f"{self.psi_threshold} and {self.alpha}"
            )
        if self.min_rows < 1 or self.window_hours < 1 or self.reference_rows < 1:
            raise UseCaseError("drift policy: min_rows, window_hours, reference_rows must be >= 1")


@dataclass(frozen=True)
class DagIds:
    """The DAG ids of a use case; ``None`` derives one from the use case's name."""

    run: str | None = None
    """The one-shot run (UI form, REST API): ``<name>``."""
    daily: str | None = None
    """The daily ingest-and-validate schedule: ``<name>_daily``."""
    training: str | None = None
    """Training on a complete week of validated days: ``<name>_training``."""
    rollout: str | None = None
    """Serving actions (canary, promote, rollback, ...): ``<name>_rollout``."""
    monitor: str | None = None
    """Served traffic validated and checked for drift, per completed hour and daily:
    ``<name>_monitor``."""
    retrain: str | None = None
    """Training on the latest validated days when drift asks for it: ``<name>_retrain``."""


@dataclass(frozen=True)
class UseCase:
    """One pipeline, as the core runs it."""

    name: str
    """``snake_case``; every deployed name derives from it."""
    title: str
    table: TableSpec
    description: str = ""
    tags: tuple[str, ...] = ()
    suites: tuple[str, ...] = ()
    """Great Expectations suites in ``data_checks/<name>/`` (default ``<table>.json``)."""
    suites_dir: str | None = None
    """Where the suites are, when not in the repository's ``data_checks/<name>/``: a use case
    shipped as a package of its own keeps them inside it."""
    generator: str | None = None
    """Import path of the deterministic, offline generator of a day of rows."""
    source_params: Mapping[str, Mapping] = field(default_factory=dict)
    """Extra trigger-form fields of the ingest DAGs (JSON schema with ``default``, ``title``,
    ``description``): the generator's knobs."""
    source_config: str | None = None
    """Import path of ``f(params) -> dict`` turning those fields into the ingest's keyword
    arguments."""
    landing_reader: str | None = None
    """Import path of ``f(source, landing_root, day, table) -> (tables, files)`` reading the
    landing zone when its files are not the core's tabular formats (images, archives of them);
    default ``pipelines.data.sources.files:read_landing``. It must keep the core's rules: stay
    inside the landing root, never move or delete a file, refuse bad input with one line."""
    learner: str | None = None
    """Import path of the use case's ``pipelines.ml.learner.Learner`` (an instance): its
    features, target, model, holdout rules and request record. Without one the use case
    ingests and validates but has no training or serving."""
    gate: Gate = field(default_factory=Gate)
    defaults: Mapping[str, object] = field(default_factory=dict)
    """Trigger-form defaults that differ from the core's (``days``, ``epochs``,
    ``batch_size``, ``lr``, ``num_workers``): what this use case needs to train a model above
    its bar with the form as it opens."""
    route_prefix: str | None = None
    """The Serve route; default ``/<name with dashes>``."""
    dag_ids: DagIds = field(default_factory=DagIds)
    drift: DriftPolicy = field(default_factory=DriftPolicy)

    def __post_init__(self) -> None:
        if not NAME.match(self.name or ""):
            raise UseCaseError(
                f"use case name {self.name!r} is not snake_case (a-z, 0-9, _; 2-48 characters)"
            )
        self.table.check(self.name)
        for path in (self.generator, self.source_config, self.landing_reader, self.learner):
            if path is not None and ":" not in path:
                raise UseCaseError(
                    f"use case {self.name}: {path!r} is not an import path 'module:function'"
                )

    # What the core deploys, named after the use case.
    @property
    def run_dag_id(self) -> str:
        return self.dag_ids.run or self.name

    @property
    def daily_dag_id(self) -> str:
        return self.dag_ids.daily or f"{self.name}_daily"

    @property
    def training_dag_id(self) -> str:
        return self.dag_ids.training or f"{self.name}_training"

    @property
    def rollout_dag_id(self) -> str:
        return self.dag_ids.rollout or f"{self.name}_rollout"

    @property
    def monitor_dag_id(self) -> str:
        return self.dag_ids.monitor or f"{self.name}_monitor"

    @property
    def retrain_dag_id(self) -> str:
        return self.dag_ids.retrain or f"{self.name}_retrain"

    @property
    def served_asset_uri(self) -> str:
        """The asset of the endpoint's captured traffic: an event per completed hour (the
        triggerer watches the lake) starts the monitoring DAG."""
        return f"conveyor://served/{self.name}"

    @property
    def drift_asset_uri(self) -> str:
        """The asset whose event asks for a retraining (emitted by the monitoring DAG)."""
        return f"conveyor://served/{self.name}/drift"

    @property
    def validated_asset_name(self) -> str:
        return f"validated_{self.table.name}"

    @property
    def validated_asset_uri(self) -> str:
        return f"conveyor://lake/{self.table.name}/validated"

    @property
    def model_name(self) -> str:
        return self.name

    @property
    def serve_app_name(self) -> str:
        return self.name

    @property
    def serve_route_prefix(self) -> str:
        return self.route_prefix or "/" + self.name.replace("_", "-")

    @property
    def suite_files(self) -> tuple[str, ...]:
        return self.suites or (f"{self.table.name}.json",)

    @property
    def dag_tags(self) -> list[str]:
        return [*self.tags, "conveyor"]

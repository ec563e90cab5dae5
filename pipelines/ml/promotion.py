"""The promotion gate: a challenger becomes champion only if it is good enough and better.

Every registered version starts as ``challenger``. It takes the ``champion`` alias only if
(1) its holdout value of the use case's gate metric passes the bar (``Gate``: higher F1, lower
MAE, ...) and (2) it beats the current champion by ``margin`` **on the same holdout**: the
challenger's holdout rows, read from the lake, scored by both models with their own
thresholds. Otherwise the champion stays, and the decision
says why in one line.

Decisions for one model are serialised by a lock (``pipelines.locks.Lock``: a PostgreSQL
advisory lock when Airflow workers run on several machines, else a file lock): the second of
two concurrent promotions sees the first one's result and must beat it, so there is exactly
one winner, and the loser's reason names the champion it lost to.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import asdict, dataclass

import pandas as pd

from pipelines.locks import Lock
from pipelines.ml.registry import CHAMPION, _client, download_version
from pipelines.usecase import Gate, TableSpec, UseCase

log = logging.getLogger(__name__)

PROMOTED_OVER_TAG = "promoted_over"
"""Set on a version when it takes the champion alias: the champion it replaced ("" for none)."""


@dataclass(frozen=True)
class PromotionDecision:
    model_name: str
    challenger: str
    champion_before: str | None
    champion_after: str | None
    promoted: bool
    reason: str
    challenger_metrics: dict
    champion_metrics: dict | None

    def as_dict(self) -> dict:
        return asdict(self)


def champion_version(tracking_uri: str, model_name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(tracking_uri).get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException:
        return None


def holdout_of(
    tracking_uri: str, model_name: str, version: str, lake_root: str, table: TableSpec
) -> pd.DataFrame:
    """The rows the version was judged on: its training dates from ``holdout_from`` on."""
    from pipelines.data import lake

    tags = _client(tracking_uri).get_model_version(model_name, version).tags
    days = [dt.date.fromisoformat(d) for d in tags["train_dates"].split(",") if d]
    frame = pd.concat(
        [lake.read_partition(lake_root, d, table.name) for d in days], ignore_index=True
    )
    return frame[frame[table.time_column] >= pd.Timestamp(tags["holdout_from"])]


def _score_version(tracking_uri: str, model_name: str, version: str, holdout, learner):
    from pipelines.ml.evaluation import holdout_report
    from pipelines.ml.model import LoadedModel

    with tempfile.TemporaryDirectory() as directory:
        model = LoadedModel(download_version(tracking_uri, model_name, version, directory), learner)
    return holdout_report(model.score, holdout, model.threshold, learner)


def promote(
    tracking_uri: str,
    model_name: str,
    version: str,
    lake_root: str,
    *,
    use_case: UseCase,
    gate: Gate,
    lock: Lock,
) -> PromotionDecision:
    """Decide whether ``version`` becomes champion, and move the alias if it does. ``gate`` is
    the use case's (``use_case.gate``) with the run's bar and margin; ``lock`` is held from
    reading the champion to moving the alias."""
    from pipelines.catalog import learner_of

    version = str(version)
    learner = learner_of(use_case)
    metric = gate.metric
    with lock.held():
        before = champion_version(tracking_uri, model_name)
        holdout = holdout_of(tracking_uri, model_name, version, lake_root, use_case.table)
        challenger = _score_version(tracking_uri, model_name, version, holdout, learner)
        value = challenger[metric]

        def decide(promoted: bool, reason: str, champion_metrics: dict | None = None):
            after = version if promoted else before
            log.info("promotion %s: %s", "accepted" if promoted else "rejected", reason)
            return PromotionDecision(
                model_name, version, before, after, promoted, reason, challenger, champion_metrics
            )

        if before == version:
            return decide(True, f"v{version} is already the champion")
        if not gate.passes(value):
            return decide(
                False,
                f"v{version} stays challenger: {gate.explain(value)},"
                f" {'below' if gate.higher_is_better else 'above'} the quality bar; champion"
                f" {_name(before)} unchanged",
            )
        missed = gate.below_floors(challenger)
        if missed:
            return decide(
                False,
                f"v{version} stays challenger: {gate.explain(value)} but holdout"
                f" {', '.join(missed)}; champion {_name(before)} unchanged",
            )
        champion = None
        if before is not None:
            champion = _score_version(tracking_uri, model_name, before, holdout, learner)
            if not gate.beats(value, champion[metric]):
                return decide(
                    False,
                    f"v{version} stays challenger: holdout {gate.label} {value:.3f} does not beat"
                    f" champion v{before} ({champion[metric]:.3f}) by the margin"
                    f" {gate.margin:.3f} on the same holdout",
                    champion,
                )
        client = _client(tracking_uri)
        client.set_registered_model_alias(model_name, CHAMPION, version)
        # The alias history, one link per promotion: whom this version replaced.
        client.set_model_version_tag(model_name, version, PROMOTED_OVER_TAG, before or "")
        return decide(
            True,
            f"v{version} is the new champion: {gate.explain(value)}"
            + gate.explain_floors(challenger)
            + (
                f", champion v{before} had {champion[metric]:.3f}"
                if champion
                else ", no champion before"
            ),
            champion,
        )


def _name(version: str | None) -> str:
    return f"v{version}" if version else "(none)"

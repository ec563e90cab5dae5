"""Feedback labels: the truth about served answers, when a source learns it later (a machine
that failed within the horizon, an inspector's verdict on a part), joined to the captured
answers for the model's live quality.

Layout: ``<lake>/_feedback/<use case>/date=<day received>/part-<time>-<id>.parquet``, appended
and never replaced (``pipelines.data.lake.append_part``: all of a file or nothing). Columns:

- ``_request_id``: the answer's ``X-Request-Id`` (the client's own, or the one the endpoint
  returned), and ``_row``: the record's position in that request (0 for one-record requests).
  Together they are the key of a captured row (``pipelines.monitoring.capture``);
- ``label``: for a learner with a decision (``Learner.decision_field``: a failure, a
  rejected part), whether the case was positive; for a regressor, the true value;
- ``_received_at``: when it was written. A later label for the same key replaces an earlier
  one (a correction), on reading.

Labels for requests that were not captured (sampled out, dropped) join nothing; that is
never an error: feedback sources do not know what was captured.
"""

from __future__ import annotations

import datetime as dt
import uuid

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.data.lake import append_part

FEEDBACK = "_feedback"
KEY = ("_request_id", "_row")
TRUE = {"1", "true", "yes", "y", "t"}
FALSE = {"0", "false", "no", "n", "f"}


def feedback_dir(root: str, use_case: str, day: dt.date) -> str:
    return f"{str(root).rstrip('/')}/{FEEDBACK}/{use_case}/date={day.isoformat()}"


def _truth(value) -> bool:
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(f"feedback: label {value!r} is not a yes/no answer (true/false, 1/0)")


def write_feedback(
    root: str,
    use_case: str,
    labels: pd.DataFrame,
    *,
    numeric: bool = False,
    now: dt.datetime | None = None,
) -> str:
    """Append ``labels`` (``_request_id``, ``label``, optional ``_row``) as one file of the day
    they arrived; returns its path. ``numeric``: the labels are true values (a regressor's),
    else yes/no answers. Anything malformed is a one-line error and nothing is written."""
    for column in ("_request_id", "label"):
        if column not in labels.columns:
            raise ValueError(f"feedback: column {column!r} is missing")
    if labels.empty:
        raise ValueError("feedback: no labels given")
    if labels["_request_id"].isna().any() or labels["label"].isna().any():
        raise ValueError("feedback: a request id or a label is empty")
    rows = pd.to_numeric(labels.get("_row", pd.Series(0, index=labels.index)), errors="coerce")
    if rows.isna().any() or (rows < 0).any():
        raise ValueError("feedback: _row must be a record's position in its request (0, 1, …)")
    if numeric:
        values = pd.to_numeric(labels["label"], errors="coerce")
        if values.isna().any():
            raise ValueError("feedback: a label is not a number")
        label = pa.array(values.astype(float))
    else:
        label = pa.array([_truth(v) for v in labels["label"]], pa.bool_())
    now = now or dt.datetime.now(dt.UTC)
    table = pa.table(
        {
            "_request_id": pa.array(labels["_request_id"].astype(str)),
            "_row": pa.array(rows.astype("int64")),
            "label": label,
            "_received_at": pa.array([now] * len(labels), pa.timestamp("us", tz="UTC")),
        }
    )
    name = f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
    return append_part(feedback_dir(root, use_case, now.date()), table, name)


def read_feedback(root: str, use_case: str, since: dt.date) -> pd.DataFrame:
    """Every label received on or after ``since``, the latest per key."""
    fs, base = fsspec.core.url_to_fs(f"{str(root).rstrip('/')}/{FEEDBACK}/{use_case}")
    tables = []
    for folder in sorted(fs.glob(f"{base.rstrip('/')}/date=*")):
        if dt.date.fromisoformat(folder.rsplit("date=", 1)[-1]) < since:
            continue
        for path in sorted(fs.glob(f"{folder}/part-*.parquet")):
            with fs.open(path, "rb") as handle:
                tables.append(pq.read_table(handle))
    if not tables:
        return pd.DataFrame(columns=[*KEY, "label", "_received_at"])
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    frame = frame.sort_values("_received_at", kind="stable")
    return frame.drop_duplicates(list(KEY), keep="last").reset_index(drop=True)


def live_quality(served: pd.DataFrame, feedback: pd.DataFrame, learner) -> dict | None:
    """The served answers' quality on those that have a label: precision, recall and F1 of
    the decision (or a regressor's MAE and RMSE), how many were labelled, and their share of
    the window's answers; None when no answer has a label yet."""
    if feedback.empty or served.empty or "_row" not in served.columns:
        return None
    joined = served.merge(feedback, on=list(KEY), how="inner")
    if joined.empty:
        return None
    quality = {"labelled": len(joined), "coverage": round(len(joined) / len(served), 4)}
    if not learner.decision_field:
        error = joined["_score"].astype(float) - joined["label"].astype(float)
        quality.update(mae=float(error.abs().mean()), rmse=float((error**2).mean() ** 0.5))
        return quality
    truth = joined["label"].astype(bool).to_numpy()
    decided = (joined["_label"].astype(str) == "True").to_numpy()
    tp = int((truth & decided).sum())
    fp = int((~truth & decided).sum())
    fn = int((truth & ~decided).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    quality.update(positives=int(truth.sum()), precision=precision, recall=recall, f1=f1)
    return quality

"""What a training run hands to the tasks after it: one typed object, built by the training
driver, written as the job's JSON result, and parsed (checked) by whoever reads it (the
register task, the CLI, the run report)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class TrainingResult:
    model_dir: str
    """The saved model (``pipelines.ml.model``): weights, scaler, signature, metrics."""
    train_dates: list[str]
    """The lake partitions trained on (YYYY-MM-DD), in order."""
    metrics: dict
    """Holdout metrics of the use case's learner (``Learner.evaluate`` and its extras)."""
    use_case: str = ""
    run_name: str = ""
    checkpoint: str | None = None
    baseline: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    """One entry per epoch: ``epoch``, ``train_loss``, ``epoch_seconds``, ``rows``,
    ``worker_peak_rss_bytes`` (the largest training worker's peak so far),
    ``resumed_from_epoch`` (the epoch the attempt that ran it started at: 0 unless Ray Train
    restarted the workers, or a retried job, from a checkpoint)."""
    split: dict = field(default_factory=dict)
    """``train_until`` and ``holdout_from`` (ISO timestamps)."""
    params: dict = field(default_factory=dict)
    manifests: dict[str, str] = field(default_factory=dict)
    """Partition date -> content hash of what was trained on."""
    status: str = "succeeded"
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds per phase of the job (prepare: split and statistics; fit; evaluate; baseline)
    and the driver's peak resident memory (``driver_peak_rss_bytes``)."""
    lineage: dict = field(default_factory=dict)
    """``pipelines.lineage.Lineage.as_dict()``: the partitions read, the model directory written."""

    @classmethod
    def parse(cls, data: TrainingResult | dict) -> TrainingResult:
        """From a job's JSON result; a missing or unknown key is a one-line error naming it."""
        if isinstance(data, cls):
            return data
        known = {f.name for f in fields(cls)}
        required = {"model_dir", "train_dates", "metrics"}
        missing = sorted(required - set(data))
        unknown = sorted(set(data) - known)
        if missing or unknown:
            problems = [f"missing {', '.join(missing)}"] if missing else []
            problems += [f"unknown {', '.join(unknown)}"] if unknown else []
            raise ValueError(f"training result: {'; '.join(problems)}")
        return cls(**data)

    def as_dict(self) -> dict:
        return asdict(self)

    def scalar_metrics(self, prefix: str = "") -> dict[str, float]:
        """Metrics as flat numbers (``{"recall": {"a": 1.0}}`` as ``recall.a``), for a tracking
        server."""
        return flatten_metrics(self.metrics, prefix)


def flatten_metrics(values: dict, prefix: str) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten_metrics(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out

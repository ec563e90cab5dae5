"""Drift of served traffic against a model's training data, per feature and for the model's
own scores.

Two measures per feature, because each alone misleads: the population stability index (PSI,
how much the distribution moved, in the binning of the reference) does not shrink with sample
size, so it says whether a shift is large enough to matter; a two-sample test (Kolmogorov-
Smirnov for numbers, chi-square for categories) says whether the shift is more than sampling
noise, which PSI cannot on a few hundred rows. A feature drifts when both say so: PSI at or
above ``psi_threshold`` and the test's p-value below ``alpha``. The tests assume independent
rows; a machine's minutes are not (its temperature drifts slowly), so on sensor data the p-value
is small between any two days and PSI is the gate that matters.

PSI is ``sum((c - r) * ln(c / r))`` over bins holding shares ``r`` of the reference and ``c``
of the current rows: numeric bins are the reference's deciles (so each holds a tenth of the
reference), categories are the union of both sides' values; an empty bin counts as
``EPSILON`` so the logarithm stays finite. Common reading: < 0.1 stable, 0.1 to 0.25 a
moderate shift, > 0.25 a large one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

EPSILON = 1e-4
PSI_THRESHOLD = 0.2
ALPHA = 0.01


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    """``numeric``, ``categorical`` or ``prediction`` (the model's scores)."""
    psi: float
    test: str
    statistic: float
    p_value: float
    drifted: bool
    reference_rows: int
    current_rows: int
    reference_mean: float | None = None
    current_mean: float | None = None


@dataclass(frozen=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]
    psi_threshold: float
    alpha: float

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def as_dict(self) -> dict:
        return {
            "psi_threshold": self.psi_threshold,
            "alpha": self.alpha,
            "drifted": self.drifted,
            "features": [asdict(f) for f in self.features],
        }


def _shares(counts: np.ndarray) -> np.ndarray:
    shares = counts / max(counts.sum(), 1)
    return np.clip(shares, EPSILON, None)


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI of ``current`` against ``reference`` in the reference's quantile bins."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    r, c = _shares(ref.astype(float)), _shares(cur.astype(float))
    return float(np.sum((c - r) * np.log(c / r)))


def _category_counts(reference: Sequence, current: Sequence) -> tuple[np.ndarray, np.ndarray]:
    ref = pd.Series(reference).astype(str).value_counts()
    cur = pd.Series(current).astype(str).value_counts()
    values = sorted(set(ref.index) | set(cur.index))
    return (
        ref.reindex(values, fill_value=0).to_numpy(float),
        cur.reindex(values, fill_value=0).to_numpy(float),
    )


def psi_categorical(reference: Sequence, current: Sequence) -> float:
    ref, cur = _category_counts(reference, current)
    r, c = _shares(ref), _shares(cur)
    return float(np.sum((c - r) * np.log(c / r)))


def _finite(values) -> np.ndarray:
    array = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    return array[np.isfinite(array)]


def numeric_drift(
    feature: str,
    reference,
    current,
    *,
    kind: str = "numeric",
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = ALPHA,
) -> FeatureDrift:
    """PSI and the two-sample Kolmogorov-Smirnov test of one numeric column (missing and
    non-finite values left out: the suite counts those)."""
    ref, cur = _finite(reference), _finite(current)
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError(
            f"drift: feature {feature!r} has no finite values in the "
            f"{'reference' if len(ref) == 0 else 'current'} rows"
        )
    psi = psi_numeric(ref, cur)
    test = stats.ks_2samp(ref, cur)
    return FeatureDrift(
        feature=feature,
        kind=kind,
        psi=round(psi, 6),
        test="ks",
        statistic=round(float(test.statistic), 6),
        p_value=float(test.pvalue),
        drifted=bool(psi >= psi_threshold and test.pvalue < alpha),
        reference_rows=len(ref),
        current_rows=len(cur),
        reference_mean=float(ref.mean()),
        current_mean=float(cur.mean()),
    )


def categorical_drift(
    feature: str,
    reference,
    current,
    *,
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = ALPHA,
) -> FeatureDrift:
    """PSI over the categories of both sides and the chi-square test of their counts."""
    ref, cur = _category_counts(reference, current)
    if ref.sum() == 0 or cur.sum() == 0:
        side = "reference" if ref.sum() == 0 else "current"
        raise ValueError(f"drift: feature {feature!r} has no values in the {side} rows")
    psi = psi_categorical(reference, current)
    if len(ref) < 2:  # one category on both sides: nothing moved
        statistic, p_value = 0.0, 1.0
    else:
        test = stats.chi2_contingency(np.vstack([ref, cur]) + 0.5)  # +0.5: no empty cell
        statistic, p_value = float(test.statistic), float(test.pvalue)
    return FeatureDrift(
        feature=feature,
        kind="categorical",
        psi=round(psi, 6),
        test="chi2",
        statistic=round(statistic, 6),
        p_value=p_value,
        drifted=bool(psi >= psi_threshold and p_value < alpha),
        reference_rows=int(ref.sum()),
        current_rows=int(cur.sum()),
    )


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    scores: tuple[Sequence[float], Sequence[float]] | None = None,
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = ALPHA,
) -> DriftReport:
    """Drift of ``current`` (served traffic) against ``reference`` (training rows) for each
    named column, and of the model's scores (``scores``: on the reference rows, on the served
    ones) when given. A named column missing on either side is a one-line error."""
    for name in (*numeric, *categorical):
        for side, frame in (("reference", reference), ("current", current)):
            if name not in frame.columns:
                raise ValueError(f"drift: column {name!r} is not in the {side} rows")
    limits = {"psi_threshold": psi_threshold, "alpha": alpha}
    features = [numeric_drift(n, reference[n], current[n], **limits) for n in numeric]
    features += [categorical_drift(n, reference[n], current[n], **limits) for n in categorical]
    if scores is not None:
        features.append(numeric_drift("prediction", *scores, kind="prediction", **limits))
    return DriftReport(features=tuple(features), psi_threshold=psi_threshold, alpha=alpha)

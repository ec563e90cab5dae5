"""Great Expectations validation vs the same checks written as vectorized pandas, and peak memory.

* marginal cost: (GX time at N rows - GX time at n rows) / (pandas time at N - pandas at n),
  i.e. the per-row price of GX over hand-written checks (target <= 3x);
* fixed cost: importing GX, building an ephemeral context and the suite, in a fresh process
  (target <= 2 s), reported separately;
* peak memory: the highest resident memory while validating N rows, above the process's
  memory just before (frame loaded, GX imported), as a multiple of the DataFrame's in-memory
  size (target <= 3x). Sampled by a thread every 2 ms, in a fresh process.

Both sides evaluate the full suite (static expectations, freshness, volume and drift) on the same
frames, alternately, in one process.

    python bench/validation_vs_pandas.py [--small 100000] [--large 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pandas as pd

from bench._common import DAY, interleaved, rows_frame
from pipelines.catalog import get_use_case
from pipelines.data.validation import (
    build_profile,
    freshness_expectation,
    load_suite_spec,
    reference_expectations,
    run_suite,
    suite_path_for,
)

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def suite_for(frame: pd.DataFrame) -> list[dict]:
    spec = load_suite_spec(suite_path_for(get_use_case("predictive_maintenance")))
    profile = build_profile([frame], spec["reference"]["drift"]["columns"], [str(DAY)])
    derived = reference_expectations(profile, spec["reference"])
    row_count = "expect_table_row_count_to_be_between"
    static = [e for e in spec["expectations"] if e["type"] != row_count]
    return [*static, freshness_expectation(DAY, NOW, "critical"), *derived]


def pandas_check(frame: pd.DataFrame, item: dict) -> bool:
    """The vectorized pandas equivalent of one expectation."""
    kind, kw = item["type"], item["kwargs"]
    col = frame[kw["column"]] if "column" in kw else None
    if kind == "expect_table_row_count_to_be_between":
        return kw.get("min_value", 0) <= len(frame) <= kw.get("max_value", np.inf)
    if kind == "expect_table_columns_to_match_set":
        return set(frame.columns) == set(kw["column_set"])
    if kind == "expect_column_values_to_be_in_type_list":
        return str(col.dtype) in kw["type_list"]
    if kind == "expect_column_values_to_not_be_null":
        return col.notna().mean() >= kw.get("mostly", 1.0)
    if kind == "expect_column_values_to_be_in_set":
        present = col.dropna()
        return bool(present.isin(kw["value_set"]).all())
    if kind == "expect_column_values_to_be_between":
        present = col.dropna()
        low, high = kw["min_value"], kw["max_value"]
        if isinstance(low, str):
            low, high = pd.Timestamp(low), pd.Timestamp(high)
        return bool(((present >= low) & (present <= high)).all())
    if kind == "expect_compound_columns_to_be_unique":
        return not frame.duplicated(kw["column_list"], keep=False).any()
    if kind == "expect_column_mean_to_be_between":
        return kw["min_value"] <= col.mean() <= kw["max_value"]
    if kind == "expect_column_stdev_to_be_between":
        return kw["min_value"] <= col.std() <= kw["max_value"]
    raise ValueError(f"no pandas equivalent for {kind}")


def fixed_cost() -> tuple[float, float]:
    """(import seconds, context + suite seconds) in a fresh interpreter."""
    code = (
        "import time; t0 = time.perf_counter();"
        "import great_expectations as gx;"
        "t1 = time.perf_counter();"
        "from bench.validation_vs_pandas import suite_for;"
        "from bench._common import rows_frame;"
        "from pipelines.data.validation import run_suite;"
        "f = rows_frame(1440); e = suite_for(f);"
        "t2 = time.perf_counter(); run_suite(f, 'telemetry', e, 'fixed');"
        "print(t1 - t0, time.perf_counter() - t2)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported, built = out.stdout.strip().splitlines()[-1].split()
    return float(imported), float(built)


PEAK = """
import gc, json, sys, threading, time, psutil
from bench._common import rows_frame
from bench.validation_vs_pandas import suite_for
from pipelines.data.validation import run_suite
frame = rows_frame(int(sys.argv[1]))
expectations = suite_for(frame)
run_suite(frame.head(1000), "telemetry", expectations, "warm")  # imports and caches loaded
gc.collect()
proc = psutil.Process()
before = proc.memory_info().rss
peak, done = [before], []
def sample():
    while not done:
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.002)
sampler = threading.Thread(target=sample)
sampler.start()
run_suite(frame, "telemetry", expectations, "peak")
done.append(1)
sampler.join()
print(json.dumps({"frame": int(frame.memory_usage(deep=True).sum()), "extra": peak[0] - before}))
"""


def peak_memory(rows: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(rows)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    medians = {}
    for label, rows in (("small", args.small), ("large", args.large)):
        frame = rows_frame(rows)
        expectations = suite_for(frame)
        gx_ok = run_suite(frame, "telemetry", expectations, "bench").success
        pd_ok = all(pandas_check(frame, e) for e in expectations if e["severity"] == "critical")
        assert gx_ok == pd_ok, "GX and pandas disagree on the suite's verdict"
        medians[label] = interleaved(
            {
                "gx": lambda f=frame, e=expectations: run_suite(f, "telemetry", e, "bench"),
                "pandas": lambda f=frame, e=expectations: [pandas_check(f, x) for x in e],
            },
            args.repeats,
        )
        print(
            f"{len(frame):>8} rows: GX {medians[label]['gx']:.3f}s"
            f"  pandas {medians[label]['pandas']:.3f}s  ({len(expectations)} expectations)"
        )
    gx_marginal = medians["large"]["gx"] - medians["small"]["gx"]
    pd_marginal = medians["large"]["pandas"] - medians["small"]["pandas"]
    print(f"marginal cost GX/pandas = {gx_marginal / pd_marginal:.2f}x (target <= 3)")
    imported, built = fixed_cost()
    print(
        f"fixed cost = {imported + built:.2f}s (target <= 2 s): import great_expectations"
        f" {imported:.2f}s + context, suite and a 1440-row validation {built:.2f}s"
    )
    peak = peak_memory(args.large)
    print(
        f"peak memory while validating {args.large} rows: +{peak['extra'] / 1e6:.0f} MB"
        f" = {peak['extra'] / peak['frame']:.2f}x the DataFrame ({peak['frame'] / 1e6:.0f} MB)"
        " (target <= 3)"
    )


if __name__ == "__main__":
    main()

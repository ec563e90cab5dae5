"""The training rows Ray Data hands the workers come in small blocks, not one per partition
file: a worker converts each block it iterates and keeps what that took, so with Ray's
default block size (128 MiB, a whole day of a large fleet) its memory grew with the data
(bench.train_scale, docs/perf-log.md). Real Ray cluster: one driver process of its own
connected to the session's Ray head, as the training job's driver is; the bound is made
small here so a small lake shows it."""

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from pipelines.catalog import get_use_case
from pipelines.data import lake
from pipelines.data.ingest import ingest_days, source_arguments
from pipelines.ray_auth import find_ray_token

pytestmark = pytest.mark.integration

DAYS = [dt.date(2026, 11, 1) + dt.timedelta(days=d) for d in range(3)]
BOUND = 64 * 1024

READ = """
import json, sys
import ray
from pipelines.catalog import get_use_case, learner_of
from pipelines.ml import streaming
from ray_jobs import train

files, bound = json.loads(sys.argv[1]), int(sys.argv[2])
use_case = get_use_case("predictive_maintenance")
learner = learner_of(use_case)
scanned = streaming.scan(files, use_case.table.time_column, learner.split_group)
split = scanned.split()
expected = streaming.training_statistics(scanned.files_before(split.train_until), split, learner)
train.TRAINING_BLOCK_BYTES = bound
ray.init()
config = {
    "use_case": use_case.name,
    "files": scanned.files_before(split.train_until),
    "train_until": split.train_until.isoformat(),
}
rows = train.training_rows(config).materialize()
blocks = [
    {"bytes": entry.metadata.size_bytes, "rows": entry.metadata.num_rows}
    for bundle in rows.iter_internal_ref_bundles()
    for entry in bundle.blocks
]
seen = {"blocks": blocks, "files": len(config["files"]), "rows": expected.rows}
print("BLOCKS " + json.dumps(seen))
"""


def test_the_training_rows_come_in_blocks_no_larger_than_the_bound(ray_head, tmp_path):
    use_case = get_use_case("predictive_maintenance")
    root = str(tmp_path / "lake")
    fields = {"machines": 6}
    ingest_days(DAYS, root, table=use_case.table, **source_arguments(use_case, fields))
    files = [str(f) for f in lake.partition_files(root, DAYS, use_case.table.name)]
    env = {
        **os.environ,
        "RAY_ADDRESS": f"{ray_head.host}:{ray_head.ray_gcs_port}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": find_ray_token() or "",
    }
    done = subprocess.run(
        [sys.executable, "-c", READ, json.dumps(files), str(BOUND)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("BLOCKS "))
    seen = json.loads(line.removeprefix("BLOCKS "))
    blocks = seen["blocks"]
    # Every training row is there once, and no partition file came as one block.
    assert sum(b["rows"] for b in blocks) == seen["rows"]
    assert len(blocks) > 2 * seen["files"], blocks
    # Ray may exceed its target by up to half (MAX_SAFE_BLOCK_SIZE_FACTOR) before it slices.
    largest = max(b["bytes"] for b in blocks)
    assert largest <= 1.5 * BOUND, f"a block of {largest:,} bytes > 1.5 x {BOUND:,}"

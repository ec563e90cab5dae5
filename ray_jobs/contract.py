"""How an Airflow-submitted Ray job tells its caller what it produced.

The submitting operator sets ``CONVEYOR_RUN_KEY`` (stable for one DAG run and task, so a retry
resumes the same run) and ``CONVEYOR_RESULT_PATH`` (shared storage). The job writes one small
JSON document there; nothing is parsed out of stdout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RUN_KEY_ENV = "CONVEYOR_RUN_KEY"
RESULT_PATH_ENV = "CONVEYOR_RESULT_PATH"


def run_key(default: str) -> str:
    return os.environ.get(RUN_KEY_ENV) or default


def write_result(result: dict, path: str | None = None) -> Path | None:
    """Atomically write the job's typed result where the submitter asked for it."""
    target = path or os.environ.get(RESULT_PATH_ENV)
    if not target:
        return None
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, out)
    return out

"""The DAG docs the Airflow UI shows (``doc_md``), written once for every use case."""

from __future__ import annotations

from pipelines.usecase import UseCase


def run_doc(uc: UseCase) -> str:
    return f"""
### {uc.title} in one run: {uc.table.name} → lake → validation → training → serving

{uc.description}

Run it from the UI (the form below) or the REST API
(`POST /api/v2/dags/{uc.run_dag_id}/dagRuns`) to go from raw data to a served model in one
run. It has no schedule: on a schedule, `{uc.daily_dag_id}` ingests and validates each day,
and `{uc.training_dag_id}` trains when a week of validated days is complete.

A run covers the **Days** ending the day before it was triggered, or the **From**..**To** date
range when both are given:

1. **ingest** one Parquet partition per day from the chosen **source** (generator, landing-zone
   files, or the PostgreSQL table of Connection `conveyor_telemetry_db`), committed atomically
   with a manifest (replaced, never appended);
2. **validate** every partition with the Great Expectations suite in `data_checks/{uc.name}/`;
   a critical failure quarantines the partition and stops the run here, so nothing
   downstream sees bad data (**Data Docs** button: the run's validation pages);
3. **plan** the training: when a model version was already trained on exactly these partitions
   (same content hashes) and hyperparameters, it is reused and **train** is skipped, unless
   **Force retrain** is on;
4. **train** the model with Ray Train (DDP) as a Ray job (deferrable; a retry reattaches to
   the same job, and the run name is stable so training resumes from its last checkpoint;
   **Ray job** button: the job on the Ray dashboard);
5. **register** the model version in MLflow (model `{uc.model_name}`, once per training run)
   as `challenger`;
6. **promote** it to `champion` only if its holdout {uc.gate.metric} passes the quality bar
   and beats the current champion on the same holdout; otherwise the champion stays (with no
   champion at all, the run ends here);
7. **deploy** the champion with Ray Serve (a Ray job on the cluster, route
   `{uc.serve_route_prefix}`), as chosen by **deploy_mode**: `full` moves all traffic to it,
   `canary` gives it a share of traffic (promote or roll back with the `{uc.rollout_dag_id}`
   DAG), `shadow` sends it copies of live requests, `none` deploys nothing. A version that
   fails to start or fails its smoke requests is rolled back automatically; the old one never
   stops serving;
8. **smoke_test** the live endpoint with real requests;
9. **report**: one page for the run (rows ingested, validation, training curve, holdout metrics,
   registered and served version, endpoint), written whatever happened (**Run report**
   button); it fails when an upstream task failed, so the run's state stays the pipeline's.
"""


def daily_doc(uc: UseCase) -> str:
    return f"""
### {uc.title}, daily: ingest yesterday's {uc.table.name} into the lake and validate it

Each run owns one **partition**, a day: the run at midnight UTC ingests the day that just
ended. Its steps are the first two of `{uc.run_dag_id}`:

1. **ingest** the day's Parquet partition from the chosen **source** (generator, landing-zone
   files, or the PostgreSQL table of Connection `conveyor_telemetry_db`), committed atomically
   and replaced, never appended, so a rerun of the same day gives the same partition;
2. **validate** it with the Great Expectations suite in `data_checks/{uc.name}/`. A partition
   that fails a critical expectation is quarantined and the run fails; one that passes emits
   the **{uc.validated_asset_name}** asset event for its day, which is what schedules
   `{uc.training_dag_id}`.

**Backfills**: `airflow backfill create --dag-id {uc.daily_dag_id} --from-date 2026-11-24
--to-date 2026-11-30` (or `POST /api/v2/backfills`, or the UI's Backfill button) makes one
run, and one partition, per day; `max_active_runs` bounds how many run at once.
`CONVEYOR_DAILY_CATCHUP=true` makes the scheduler catch up on missed days by itself.
"""


def training_doc(uc: UseCase) -> str:
    return f"""
### {uc.title}, training: train, promote and serve when a week of validated data is complete

Scheduled by data, not by the clock: `{uc.daily_dag_id}` emits a **{uc.validated_asset_name}**
event per validated day, and this DAG runs once per ISO week (Monday to Sunday) when all
seven of its days are validated: its partition key names the week. A 7-day backfill of
`{uc.daily_dag_id}` over a calendar week therefore makes exactly one training run; a week
with a quarantined day waits until that day is fixed and validated again.
`max_active_runs=1`: trainings never overlap.

Steps (shared with `{uc.run_dag_id}`, see its doc):
**partitions** (the week's days) → **plan** (reuse a version trained on exactly these inputs
unless **Force retrain**) → **train** (Ray Train, deferrable) → **register** (MLflow,
`challenger`) → **promote** (quality bar and champion comparison) → **deploy** (Ray Serve, by
**deploy_mode**, automatic rollback) → **smoke_test** → **report**.

Retraining a week by hand: trigger this DAG with a partition key (UI "Trigger" → partition
key, or `"partition_key": "2026-11-23 (W48)"` in the REST body).
"""


def rollout_doc(uc: UseCase) -> str:
    return f"""
### {uc.title}, serving rollout: canary, shadow, promotion and rollback of the live model

Operates on the Ray Serve application `{uc.serve_app_name}` (route `{uc.serve_route_prefix}`)
that `{uc.run_dag_id}` and `{uc.training_dag_id}` deploy, one action per run (a Ray job on
the cluster, next to Serve):

- **deploy**: all traffic to **version**;
- **canary**: **fraction** of requests to **version**, the rest to the stable one (every
  response names the version that served it, header `X-Conveyor-Model-Version`);
- **shadow**: **version** gets a copy of live requests; its answers are logged, never returned;
- **promote**: the canary becomes the stable version;
- **rollback**: ends the canary, else the shadow, else returns to the previous stable version.

A version that fails to start or fails its smoke requests is rolled back automatically: the
routing from before the run keeps serving. Runs are idempotent: repeating one re-checks it.
"""


def monitor_doc(uc: UseCase) -> str:
    d = uc.drift
    return f"""
### {uc.title}, monitoring: served traffic validated and checked for drift

Runs when an hour of served traffic is complete (the triggerer watches the lake and emits a
`served_{uc.name}` asset event per completed hour), and daily at midnight UTC.

The endpoint `{uc.serve_route_prefix}` keeps what it answers in the lake
(`_served/{uc.name}/date=…/hour=…`, setting `CONVEYOR_CAPTURE_RATE`). Each run reads the last
**window_hours** of it and:

- runs the use case's suite on it (the column checks; served requests carry no label);
- compares each feature with the champion's training partitions: PSI and a two-sample test
  (Kolmogorov-Smirnov, chi-square for categories); a feature drifts at PSI ≥ {d.psi_threshold}
  with p < {d.alpha}; under {d.min_rows} served rows there is no verdict;
- writes a page to the reports (verdict, table per feature, PSI over time);
- on drift{"" if d.retrain else " (retraining is off for this use case)"}, emits the
  **drift_{uc.name}** asset event, which starts `{uc.retrain_dag_id}`.
"""


def retrain_doc(uc: UseCase) -> str:
    return f"""
### {uc.title}, retraining on drift: the latest validated days through the same gate

Scheduled on the **drift_{uc.name}** asset that `{uc.monitor_dag_id}` emits when served traffic
has drifted. Trains on the latest **Days** committed partitions that passed validation, then
the same steps as `{uc.training_dag_id}`: plan (a version already trained on exactly these
inputs is reused unless **Force retrain**) → train → register → promote → deploy →
smoke_test → report. A retrained model that does not beat the champion is not promoted and
the endpoint keeps serving what it served.
"""

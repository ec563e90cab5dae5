"""``conveyor``: every pipeline stage from the shell, calling the same functions as the DAG.

Success prints a JSON summary on stdout and exits 0; failure prints one line naming the cause on
stderr and exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sys
from pathlib import Path

import typer

from pipelines.settings import get_settings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)


def _emit(payload) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


def _one_line_errors(func):
    """Turn any exception into a one-line message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except Exception as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            typer.echo(f"conveyor {func.__name__}: {message}", err=True)
            raise typer.Exit(1) from None

    return wrapper


USE_CASE_OPTION = typer.Option(
    None,
    "--use-case",
    help="the use case (pipelines.catalog) to act on; default: CONVEYOR_USE_CASE, or the only"
    " one registered",
)


def _use_case(name: str | None):
    """The named use case; without a name, ``CONVEYOR_USE_CASE``'s, else the first registered
    one (in-repository folders first, by name)."""
    from pipelines.catalog import discover_use_cases, get_use_case

    name = name or get_settings().use_case
    if name:
        return get_use_case(name)
    registered = discover_use_cases()
    if not registered:
        raise ValueError("no use case is registered (see docs/use-cases.md)")
    return next(iter(registered.values()))


def _use_case_settings(name: str | None):
    """The deployment settings with the use case's model, Serve application and route."""
    return get_settings().for_use_case(_use_case(name))


def _source_fields(values: list[str]) -> dict:
    """``--param name=value`` options (value as JSON when it parses, else text)."""
    fields = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {item!r} is not name=value")
        try:
            fields[name] = json.loads(text)
        except json.JSONDecodeError:
            fields[name] = text
    return fields


PARAM_OPTION = typer.Option(
    [],
    "--param",
    help="a source field of the use case as name=value (JSON values allowed), e.g. machines=8",
)


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a YYYY-MM-DD date") from None


@app.command()
@_one_line_errors
def generate(
    date: str = typer.Option(..., help="day to generate, YYYY-MM-DD"),
    out: Path = typer.Option(..., help="landing directory to write the file into"),
    fmt: str = typer.Option("parquet", "--format", help="parquet, csv, csv.gz, jsonl, jsonl.gz"),
    param: list[str] = PARAM_OPTION,
    use_case: str | None = USE_CASE_OPTION,
):
    """Generate a day of the use case's data into a landing-zone file (its source fields, such
    as injected faults, as --param)."""
    from pipelines.data.ingest import source_arguments
    from pipelines.data.sources.files import write_landing_file

    spec = _use_case(use_case)
    generate = source_arguments(spec, _source_fields(param)).get("generate")
    if generate is None:
        raise ValueError(f"use case {spec.name} has no generator")
    day = _date(date)
    _emit(write_landing_file(generate(day), out, spec.table.name, day, fmt))


@app.command()
@_one_line_errors
def ingest(
    date: str = typer.Option(..., help="partition date, YYYY-MM-DD"),
    source: str = typer.Option(
        "generator",
        help="'generator', a landing file or directory (inside the landing root), or a"
        " postgresql:// URI",
    ),
    lake: str | None = typer.Option(
        None, help="lake root, a path or fsspec URL (default: settings)"
    ),
    landing_root: str | None = typer.Option(None, help="landing root (default: settings)"),
    table: str | None = typer.Option(None, help="PostgreSQL table (default: the lake table's)"),
    param: list[str] = PARAM_OPTION,
    use_case: str | None = USE_CASE_OPTION,
):
    """Load one day into its lake partition (replacing it); the lake is untouched on error."""
    from pipelines.data.ingest import ingest_day, source_arguments

    settings, spec = get_settings(), _use_case(use_case)
    result = ingest_day(
        _date(date),
        lake or settings.lake,
        table=spec.table,
        source=source,
        landing_root=landing_root or settings.landing,
        sql_table=table,
        **source_arguments(spec, _source_fields(param)),
    )
    _emit(result.as_dict())


@app.command()
@_one_line_errors
def validate(
    date: str = typer.Option(..., help="partition date, YYYY-MM-DD"),
    lake: str | None = typer.Option(None, help="lake root (default: settings)"),
    use_case: str | None = USE_CASE_OPTION,
):
    """Validate a partition: exit 0 on pass; on a critical failure exit 1 and quarantine it."""
    from pipelines.data.validation import ValidationFailed, suite_path_for, validate_partition

    settings, spec = get_settings(), _use_case(use_case)
    try:
        report = validate_partition(
            lake or settings.lake,
            _date(date),
            settings.validation_dir / spec.name,
            suite_path_for(spec),
            table=spec.table.name,
        )
    except ValidationFailed as exc:
        _emit(exc.report.as_dict())
        typer.echo(f"conveyor validate: {exc}", err=True)
        raise typer.Exit(1) from None
    _emit(report.as_dict())


@app.command()
@_one_line_errors
def feedback(
    path: Path = typer.Argument(..., help="CSV or Parquet: _request_id, label, optional _row"),
    lake: str | None = typer.Option(None, help="lake root (default: settings)"),
    use_case: str | None = USE_CASE_OPTION,
):
    """Record feedback labels (the truth about served answers, learned later) for the
    monitoring DAG's live precision and recall; appended to ``<lake>/_feedback/<use case>``."""
    import pandas as pd

    from pipelines.catalog import learner_of
    from pipelines.monitoring.feedback import write_feedback

    spec = _use_case(use_case)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    labels = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    numeric = not learner_of(spec).decision_field
    written = write_feedback(lake or get_settings().lake, spec.name, labels, numeric=numeric)
    _emit({"use_case": spec.name, "labels": len(labels), "path": written})


@app.command()
@_one_line_errors
def train(
    dates: str = typer.Option(..., help="comma-separated partition dates"),
    epochs: int = typer.Option(5, min=1),
    num_workers: int = typer.Option(2, min=1),
    use_gpu: str = typer.Option("auto"),
    name: str = typer.Option("cli", help="run name; the same name resumes from its checkpoint"),
    use_case: str | None = USE_CASE_OPTION,
):
    """Train on the Ray cluster (submits ray_jobs/train.py through the Jobs API) and register.
    The same ``--name`` again reattaches to that run's job, or resumes from its checkpoint."""
    from pipelines.catalog import runtime_env_for
    from pipelines.ml.registry import register_training
    from pipelines.ray_jobs_client import RayConnectionConfig, RayJobsClient, project_runtime_env

    settings = _use_case_settings(use_case)
    runtime_env = {**project_runtime_env(), **runtime_env_for(settings.use_case)}
    result = RayJobsClient(RayConnectionConfig.at(settings.ray_jobs_address)).run(
        f"cli-train-{settings.use_case}-{name}",
        f"python -m ray_jobs.train --use-case {settings.use_case} --lake {settings.lake}"
        f" --dates {dates} --storage-path {settings.runs_dir} --epochs {epochs}"
        f" --num-workers {num_workers} --use-gpu {use_gpu} --name {name}",
        runtime_env=runtime_env,
        result_path=settings.runs_dir / "results" / f"{name}.json",
    )
    version = register_training(settings.tracking_uri, settings.model_name, result, name)
    _emit({"train": result, "registered": version.as_dict()})


@app.command()
@_one_line_errors
def rollout(
    action: str = typer.Argument(..., help="deploy, canary, shadow, promote or rollback"),
    version: str = typer.Option(None, help="registered model version (deploy, canary, shadow)"),
    fraction: float = typer.Option(None, help="canary share of traffic (default from settings)"),
    use_case: str | None = USE_CASE_OPTION,
):
    """Change what Ray Serve serves; a failing new version is rolled back automatically."""
    from pipelines.serving.rollout import run_action
    from pipelines.serving.target import target_from_settings

    s = _use_case_settings(use_case)
    share = s.serve_canary_fraction if fraction is None else fraction
    _emit(run_action(target_from_settings(s), action, version, share))


@app.command()
@_one_line_errors
def serving(use_case: str | None = USE_CASE_OPTION):
    """What the router sends where (stable, canary and share, shadow, previous)."""
    from pipelines.serving.rollout import current_routing
    from pipelines.serving.target import target_from_settings

    routing = current_routing(target_from_settings(_use_case_settings(use_case)))
    _emit(routing.model_dump() if routing else {"deployed": False})


@app.command()
@_one_line_errors
def predict(
    json_: str = typer.Option(..., "--json", help="one record or a list of records"),
    use_case: str | None = USE_CASE_OPTION,
):
    """Score records against the served endpoint."""
    from pipelines.serving.client import predict as post

    try:
        payload = json.loads(json_)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--json is not valid JSON ({exc})") from None
    records = payload if isinstance(payload, list) else [payload]
    s = _use_case_settings(use_case)
    _emit(post(s.serve_endpoint, records, token=s.serve_token.get_secret_value()))


@app.command()
@_one_line_errors
def new(
    name: str = typer.Argument(..., help="the use case's name, snake_case"),
    path: Path | None = typer.Option(
        None, help="write a package of its own under this folder (default: into this repository)"
    ),
):
    """Scaffold a working use case: spec, generator, learner, suite and tests."""
    from conveyor.scaffold import new_use_case

    written = new_use_case(name, path=path)
    _emit({"use_case": name, "files": [str(f) for f in written]})


@app.command()
@_one_line_errors
def up(airflow: bool = typer.Option(True, help="also start Airflow standalone")):
    """Start the embedded stack (Ray head, MLflow, Airflow); reuse what already runs."""
    from conveyor.stack import Stack

    _emit([r.as_dict() for r in Stack(get_settings()).up(airflow=airflow)])


@app.command()
@_one_line_errors
def down():
    """Stop exactly what `conveyor up` started (by recorded PID)."""
    from conveyor.stack import Stack

    _emit({"stopped": Stack(get_settings()).down()})


@app.command()
@_one_line_errors
def status():
    """Show the embedded stack's services and whether each is running."""
    from conveyor.stack import Stack

    _emit(Stack(get_settings()).status())


@app.command("airflow-passwords")
@_one_line_errors
def airflow_passwords(path: Path = typer.Argument(..., help="the simple auth manager's file")):
    """Write Airflow's users' passwords file (docker-compose's airflow-init runs this): the
    notes user's password is the one in the conveyor_airflow_api Connection
    (AIRFLOW_CONN_CONVEYOR_AIRFLOW_API), so the report task can write the run's note; the
    admin's is kept, or generated on the first start."""
    import os

    from conveyor.stack import AIRFLOW_USER, NOTES_USER
    from conveyor.stack import airflow_passwords as write_passwords

    conn = json.loads(os.environ.get("AIRFLOW_CONN_CONVEYOR_AIRFLOW_API") or "{}")
    if conn.get("login") != NOTES_USER or not conn.get("password"):
        raise ValueError(
            f"AIRFLOW_CONN_CONVEYOR_AIRFLOW_API must log in as {NOTES_USER!r} with a password"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_passwords(path, notes=conn["password"])
    _emit({"passwords_file": str(path), "users": [AIRFLOW_USER, NOTES_USER]})


@app.command()
@_one_line_errors
def demo(
    days: int | None = typer.Option(None, min=1, help="days of data; default: the form's"),
    epochs: int | None = typer.Option(None, min=1, help="training epochs; default: the form's"),
    param: list[str] = PARAM_OPTION,
    use_case: str | None = typer.Option(
        None, "--use-case", help="the use case to run (default: predictive_maintenance)"
    ),
    timeout: float = typer.Option(1800.0),
):
    """Start the stack, trigger a use case's DAG through Airflow's REST API, follow it, predict.

    The run's fields are its trigger form's defaults (which train a model above the use case's
    bar), overridden by --days, --epochs and --param name=value."""
    from conveyor.demo import USE_CASE, run_demo

    name = use_case or USE_CASE
    given = {"days": days, "epochs": epochs}
    params = {**_source_fields(param), **{k: v for k, v in given.items() if v is not None}}
    sys.exit(run_demo(get_settings(), params=params, timeout=timeout, use_case=name))


if __name__ == "__main__":
    app()

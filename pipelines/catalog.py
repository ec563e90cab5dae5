"""Finding use cases: every package under ``pipelines/usecases/`` that exposes ``USE_CASE``,
and every entry point of the group ``conveyor.use_cases`` (a use case shipped as a package of
its own, pip-installed next to Conveyor, with no edit here), as Airflow finds its providers.

A package declares one in its ``pyproject.toml``::

    [project.entry-points."conveyor.use_cases"]
    energy_demand = "energy_demand:USE_CASE"

A third way, for a package that is importable but not installed with metadata (a folder on
``PYTHONPATH``, or code shipped to a Ray job): ``CONVEYOR_USE_CASES``, a comma-separated list
of import paths (``energy_demand:USE_CASE``). A Ray job gets a use case from outside the
repository this way (``runtime_env_for``).

The core never imports a use case by name: it asks the catalog. Loading imports only the
spec modules (data), so the DAG factory can call it at parse time.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path

from pipelines.usecase import UseCase, UseCaseError

ENTRY_POINT_GROUP = "conveyor.use_cases"
IN_REPO_PACKAGE = "pipelines.usecases"
ENV_VAR = "CONVEYOR_USE_CASES"


def _in_repo() -> dict[str, tuple[UseCase, str]]:
    package = importlib.import_module(IN_REPO_PACKAGE)
    found = {}
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg:
            continue
        qualified = f"{IN_REPO_PACKAGE}.{module.name}"
        spec = getattr(importlib.import_module(qualified), "USE_CASE", None)
        if spec is not None:
            found[qualified] = (_checked(spec, qualified), qualified)
    return {uc.name: (uc, where) for uc, where in found.values()}


def _installed() -> list[tuple[UseCase, str, str]]:
    """(spec, where, import path) of each use case registered outside the repository."""
    found, seen = [], set()
    points = [(f"entry point {p.name} = {p.value}", p.value, p.load) for p in _entry_points()]
    listed = [p.strip() for p in os.environ.get(ENV_VAR, "").split(",") if p.strip()]
    points += [(f"{ENV_VAR} {p}", p, _loader(p)) for p in listed]
    for where, path, load in points:
        if path in seen:  # installed and listed: one use case
            continue
        seen.add(path)
        try:
            spec = load()
        except Exception as exc:
            raise UseCaseError(f"{where} does not load: {type(exc).__name__}: {exc}") from None
        found.append((_checked(spec, where), where, path))
    return found


def _entry_points():
    return entry_points(group=ENTRY_POINT_GROUP)


def _loader(path: str):
    module, _, attribute = path.partition(":")
    return lambda: getattr(importlib.import_module(module), attribute)


def _checked(spec, where: str) -> UseCase:
    if not isinstance(spec, UseCase):
        raise UseCaseError(f"{where} is a {type(spec).__name__}, not a UseCase")
    return spec


def discover_use_cases() -> dict[str, UseCase]:
    """Every registered use case by name, in-repo first; two with one name is an error that
    names both places."""
    found = _in_repo()
    for spec, where, _ in _installed():
        if spec.name in found:
            raise UseCaseError(
                f"use case {spec.name!r} is registered twice: {found[spec.name][1]} and {where}"
            )
        found[spec.name] = (spec, where)
    return {name: found[name][0] for name in sorted(found)}


def get_use_case(name: str) -> UseCase:
    """One use case by name; an unknown name is an error listing the known ones."""
    use_cases = discover_use_cases()
    if name not in use_cases:
        known = ", ".join(use_cases) or "none"
        raise UseCaseError(f"no use case named {name!r} (registered: {known})")
    return use_cases[name]


def runtime_env_for(use_case: UseCase | str) -> dict:
    """What a Ray job needs to import a use case that lives outside the repository: its
    package shipped with the job (``py_modules``) and named in ``CONVEYOR_USE_CASES``. Empty
    for the repository's own use cases, which travel with the project's working directory.
    (Serve replicas import a use case from the nodes' environment: install its package there.)
    """
    name = use_case if isinstance(use_case, str) else use_case.name
    for spec, _, path in _installed():
        if spec.name != name:
            continue
        package = sys.modules[path.partition(":")[0].split(".")[0]]
        return {
            "py_modules": [str(Path(package.__file__).parent)],
            "env_vars": {ENV_VAR: path},
        }
    return {}


def import_object(path: str):
    """The object an import path ``"package.module:attribute"`` names (a use case's hooks are
    named this way so its spec stays cheap to import)."""
    module, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise UseCaseError(f"cannot import {path!r}: {exc}") from None


def learner_of(use_case: UseCase | str):
    """The use case's learner (``UseCase.learner``), imported now and checked: where it trains
    or serves, never where DAGs are parsed. The check is by shape (a
    ``pipelines.ml.learner.Learner`` has it), so the catalog, which the data and serving
    stages use too, depends on no stage."""
    spec = get_use_case(use_case) if isinstance(use_case, str) else use_case
    if spec.learner is None:
        raise UseCaseError(f"use case {spec.name} declares no learner: it cannot train or serve")
    learner = import_object(spec.learner)
    if isinstance(learner, type) or not callable(getattr(learner, "check", None)):
        raise UseCaseError(
            f"use case {spec.name}: {spec.learner!r} is a {type(learner).__name__}, "
            "not an instance of a pipelines.ml.learner.Learner"
        )
    try:
        learner.check(spec.name)
    except ValueError as exc:
        raise UseCaseError(str(exc)) from None
    return learner

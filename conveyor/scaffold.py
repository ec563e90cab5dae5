"""``conveyor new <name>``: a working use-case folder from a template, like ``kedro new``.

In the repository (the default): ``pipelines/usecases/<name>/`` (spec, generator, learner),
its suite in ``data_checks/<name>/`` and its tests in ``tests/unit/pipelines/usecases/<name>/``;
the catalog finds it at once, and the DAG factory builds its four DAGs. With ``--path DIR``:
a package ``DIR/<name>/`` of its own (suite and tests inside it), to ship outside this
repository and register through the ``conveyor.use_cases`` entry point. Nothing is
overwritten: an existing folder or file is a one-line error and nothing is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from string import Template

from pipelines.catalog import IN_REPO_PACKAGE, discover_use_cases
from pipelines.usecase import NAME

TEMPLATES = Path(__file__).parent / "templates" / "use_case"
REPO = Path(__file__).resolve().parents[1]


def plan(name: str, root: Path, path: Path | None) -> tuple[dict[Path, str], dict[str, str]]:
    """(target file -> template name, template values) for use case ``name``."""
    in_repo = path is None
    values = {
        "name": name,
        "title": name.replace("_", " ").capitalize(),
        "dashed": name.replace("_", "-"),
        "package": f"{IN_REPO_PACKAGE}.{name}" if in_repo else name,
        "suites_dir": ""
        if in_repo
        else '\n    suites_dir=str(Path(__file__).parent / "data_checks"),',
    }
    if in_repo:
        folder = root / Path(*IN_REPO_PACKAGE.split(".")) / name
        suite = root / "data_checks" / name / f"{name}.json"
        test = root / "tests" / "unit" / "pipelines" / "usecases" / name / f"test_{name}.py"
    else:
        folder = Path(path) / name
        suite = folder / "data_checks" / f"{name}.json"
        test = folder / "tests" / f"test_{name}.py"
    files = {
        folder / "__init__.py": "__init__.py.tmpl",
        folder / "generator.py": "generator.py.tmpl",
        folder / "learner.py": "learner.py.tmpl",
        suite: "suite.json.tmpl",
        test: "test_use_case.py.tmpl",
    }
    return files, values


def new_use_case(name: str, *, root: Path = REPO, path: Path | None = None) -> list[Path]:
    """Write the use case's files; their paths. A bad or taken name, or a file already
    there, is a ``ValueError`` naming it, with nothing written."""
    if not NAME.match(name):
        raise ValueError(f"use case name {name!r} is not snake_case (a-z, 0-9, _; 2-48 characters)")
    if name in discover_use_cases():
        raise ValueError(f"a use case named {name!r} is already registered")
    files, values = plan(name, Path(root), path)
    taken = [str(f) for f in files if f.exists()]
    if taken:
        raise ValueError(f"conveyor new {name}: {taken[0]} already exists")
    rendered = {
        f: Template((TEMPLATES / t).read_text()).substitute(values) for f, t in files.items()
    }
    if path is not None:  # a package of its own: ``from pathlib import Path`` for suites_dir
        init = next(f for f in files if f.name == "__init__.py")
        rendered[init] = rendered[init].replace(
            "\nfrom pipelines.usecase", "\nfrom pathlib import Path\n\nfrom pipelines.usecase", 1
        )
    for target, text in rendered.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(text)
        os.replace(partial, target)
    return list(rendered)

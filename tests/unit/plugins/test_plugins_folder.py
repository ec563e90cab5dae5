"""Airflow imports every .py file under the plugins folder as a top-level module named after
the file. The provider is a package (installed, found through its entry point), so the
folder's .airflowignore keeps Airflow out of it: otherwise ``hooks/ray_jobs.py`` became the
module ``ray_jobs`` in every process that loads plugins, shadowing the ``ray_jobs`` package."""

import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"


def test_only_the_ui_plugin_is_loaded_and_no_package_is_shadowed(monkeypatch):
    import airflow.plugins_manager as manager

    monkeypatch.setattr(sys, "modules", dict(sys.modules))  # whatever it loads is undone
    import ray_jobs

    plugins, errors = manager._load_plugins_from_plugin_directory(str(PLUGINS))
    assert errors == {} and [p.name for p in plugins] == ["conveyor"]
    assert sys.modules["ray_jobs"] is ray_jobs
    assert not {"validation", "report", "ray_job", "data_docs"} & set(sys.modules)

"""Conveyor's provider metadata, found by Airflow through the ``apache_airflow_provider``
entry point (``pyproject.toml``), as every Airflow provider declares itself: a stock Airflow
then offers the ``ray`` connection type (with its form fields) and knows the task buttons."""

from __future__ import annotations


def get_provider_info() -> dict:
    return {
        "package-name": "conveyor",
        "name": "Conveyor",
        "description": "Ray Jobs, Great Expectations validation and run reports for Airflow.",
        "integrations": [
            {"integration-name": "Ray", "external-doc-url": "https://docs.ray.io", "tags": []},
            {"integration-name": "Conveyor monitoring", "tags": []},
        ],
        "hooks": [
            {
                "integration-name": "Ray",
                "python-modules": ["conveyor_provider.hooks.ray_jobs"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Ray",
                "python-modules": ["conveyor_provider.triggers.ray_job"],
            },
            {
                "integration-name": "Conveyor monitoring",
                "python-modules": ["conveyor_provider.triggers.captured"],
            },
        ],
        "connection-types": [
            {
                "hook-class-name": "conveyor_provider.hooks.ray_jobs.RayJobsHook",
                "connection-type": "ray",
            }
        ],
        "extra-links": [
            "conveyor_provider.links.ray_job.RayJobLink",
            "conveyor_provider.links.data_docs.DataDocsLink",
            "conveyor_provider.links.report.RunReportLink",
        ],
    }

"""A stock Airflow finds the provider through its entry point: the ``ray`` connection type
(its hook) and the task buttons, as it finds its own providers."""

import json
import subprocess
import sys


def test_airflow_s_providers_manager_finds_the_ray_connection_type_and_the_links():
    code = (
        "import json;"
        "from airflow.providers_manager import ProvidersManager;"
        "pm = ProvidersManager();"
        "hook = pm.hooks.get('ray');"
        "print(json.dumps({'provider': 'conveyor' in pm.providers,"
        " 'hook': hook.hook_class_name if hook else None,"
        " 'links': sorted(c for c in pm.extra_links_class_names if 'conveyor' in c)}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "provider": True,
        "hook": "conveyor_provider.hooks.ray_jobs.RayJobsHook",
        "links": [
            "conveyor_provider.links.data_docs.DataDocsLink",
            "conveyor_provider.links.ray_job.RayJobLink",
            "conveyor_provider.links.report.RunReportLink",
        ],
    }, seen

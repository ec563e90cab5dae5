"""The docs are a reference: every repository file they name in backticks exists, so a
renamed or moved module fails here instead of sending a reader to a file that is gone."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = (
    "bench",
    "conveyor",
    "dags",
    "data_checks",
    "docs",
    "pipelines",
    "plugins",
    "ray_jobs",
    "tests",
)
EXTENSIONS = "py|md|json|yaml|yml|sh|j2|tmpl"
PATH = re.compile(rf"`((?:{'|'.join(TOP)})/[\w./-]+\.(?:{EXTENSIONS}))`")
EXAMPLES = ("pump_faults",)
"""Names a doc uses as an example of what a command writes (``conveyor new pump_faults``)."""


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_doc_names_exists(doc):
    named = set(PATH.findall(doc.read_text()))
    missing = sorted(
        p for p in named if not (ROOT / p).exists() and not any(e in p for e in EXAMPLES)
    )
    assert not missing, f"{doc.relative_to(ROOT)} names files that do not exist: {missing}"

"""Visual quality control end to end on tiny data, through the real stack: its one-shot DAG
(generated images ingested into the lake, the metadata suite, the CNN trained on Ray, the
registry and gate, Serve, the smoke test, the report) runs green under ``dag.test()``; then its
endpoint, next to predictive maintenance's under the same Serve instance, classifies a real
PNG sent raw, as multipart and as base64 JSON, refuses bad images with a 4xx, and the trained
model sees a drawn scratch: the same surface scores higher for ``scratch`` with it."""

import base64
from pathlib import Path

import httpx
import numpy as np
import pytest

from pipelines.usecases.visual_quality_control.generator import _surface, draw_defect
from pipelines.usecases.visual_quality_control.images import encode_png

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "visual_quality_control"
ROUTE = "/visual-quality-control"
TINY = {
    "days": 2,
    "images": 240,
    "defect_rate": 0.3,
    "epochs": 6,
    # Tiny data and few epochs: the bar is lowered so the run deploys what it trained.
    "min_defect_recall": 0.5,
    "min_macro_f1": 0.3,
    "promotion_margin": 0.0,
}


def _with_and_without(kind: str, seed: int) -> tuple[bytes, bytes]:
    """One surface, with and without a defect of ``kind``, as PNG files."""
    rng = np.random.default_rng(seed)
    surface = _surface(rng, "machined")
    noise = rng.normal(0.0, 0.015, surface.shape)
    defective = draw_defect(surface, kind, rng)

    def png(values):
        return encode_png(np.clip((values + noise) * 255 + 0.5, 0, 255).astype(np.uint8))

    return png(surface), png(defective)


@pytest.fixture(scope="module")
def served(local_stack, airflow_home):
    result, stdout, _ = airflow_home.run_dag(
        ROOT / "dags" / "use_cases.py", DAG_ID, "2026-11-05T00:00:00+00:00", TINY
    )
    assert result["state"] == "success", f"{result}\n{stdout[-6000:]}"
    assert set(result["tasks"].values()) == {"success"}, result
    return f"{local_stack.serve_base_url}{ROUTE}/predict"


def test_the_endpoint_classifies_a_png_sent_raw_as_multipart_and_as_json(served):
    clean, scratched = _with_and_without("scratch", seed=11)
    raw = httpx.post(served, content=scratched, headers={"content-type": "image/png"}, timeout=30)
    assert raw.status_code == 200, raw.text
    answer = raw.json()
    assert answer["model_name"] == "visual_quality_control"
    (prediction,) = answer["predictions"]
    assert set(prediction["probabilities"]) == {"ok", "scratch", "spot", "crack", "stain"}
    assert abs(sum(prediction["probabilities"].values()) - 1.0) < 1e-4

    files = [
        ("file", ("clean.png", clean, "image/png")),
        ("file", ("s.png", scratched, "image/png")),
    ]
    multipart = httpx.post(served, files=files, timeout=30)
    assert multipart.status_code == 200, multipart.text
    assert len(multipart.json()["predictions"]) == 2

    records = [{"image_base64": base64.b64encode(scratched).decode()}]
    as_json = httpx.post(served, json={"records": records}, timeout=30)
    assert as_json.status_code == 200, as_json.text
    # The same image gets the same answer whichever way it was sent.
    assert as_json.json()["predictions"][0]["probabilities"] == pytest.approx(
        prediction["probabilities"], abs=1e-6
    )


def test_the_trained_model_sees_a_drawn_scratch(served):
    for seed in (21, 22, 23):
        clean, scratched = _with_and_without("scratch", seed)
        files = [
            ("file", ("a.png", clean, "image/png")),
            ("file", ("b.png", scratched, "image/png")),
        ]
        response = httpx.post(served, files=files, timeout=30)
        assert response.status_code == 200, response.text
        without, with_scratch = response.json()["predictions"]
        assert with_scratch["probabilities"]["scratch"] > without["probabilities"]["scratch"]
        assert with_scratch["defect_probability"] > without["defect_probability"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"", "image/png", 422, "empty"),
        (b"plain text, not pixels", "image/png", 422, "not an image"),
        (b"{}", "text/plain", 415, "content type"),
        (b'{"records": [{"image_base64": "%%%"}]}', "application/json", 422, "base64"),
    ],
)
def test_bad_images_get_a_4xx_with_a_one_line_cause(served, body, content_type, status, says):
    response = httpx.post(served, content=body, headers={"content-type": content_type}, timeout=30)
    assert response.status_code == status, response.text
    assert says in response.json()["message"]
    assert "\n" not in response.json()["message"]

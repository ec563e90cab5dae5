"""Feedback labels: appended by day received, corrected by a later label, joined to captured
answers by request id and position, and turned into the live precision and recall the drift
page shows."""

import datetime as dt
import uuid

import pandas as pd
import pytest

from pipelines.catalog import get_use_case, learner_of
from pipelines.monitoring.capture import CaptureConfig, CaptureWriter, read_captured
from pipelines.monitoring.feedback import (
    FEEDBACK,
    live_quality,
    read_feedback,
    write_feedback,
)

USE_CASE = get_use_case("predictive_maintenance")
LEARNER = learner_of(USE_CASE)
NOW = dt.datetime.now(dt.UTC)
# Wide enough for traffic captured whenever the test runs in a long suite (each test's lake
# is its own, so nothing else falls in it).
WINDOW = (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1))


def _serve(root: str, records: list[dict], decisions: list[bool]) -> str:
    """One captured request of ``records`` answered with ``decisions``; its request id."""
    writer = CaptureWriter(
        CaptureConfig(root=root, use_case=USE_CASE.name),
        LEARNER.capture_fields,
        score_field=LEARNER.score_field,
        label_field=LEARNER.decision_field,
    )
    answers = [
        {LEARNER.score_field: 0.9 if d else 0.1, LEARNER.decision_field: d} for d in decisions
    ]
    request_id = uuid.uuid4().hex
    writer.offer(records, answers, {"request_id": request_id, "model_version": "3"})
    writer.close()
    return request_id


def test_a_later_label_corrects_an_earlier_one_and_old_days_are_not_read(tmp_path):
    root = str(tmp_path)
    yesterday = NOW - dt.timedelta(days=1)
    write_feedback(
        root, USE_CASE.name, pd.DataFrame({"_request_id": ["a"], "label": [1]}), now=yesterday
    )
    write_feedback(
        root,
        USE_CASE.name,
        pd.DataFrame({"_request_id": ["a", "b"], "_row": [0, 2], "label": ["false", "yes"]}),
        now=NOW,
    )
    labels = read_feedback(root, USE_CASE.name, since=yesterday.date())
    assert sorted(zip(labels["_request_id"], labels["_row"], labels["label"], strict=True)) == [
        ("a", 0, False),  # the correction received today
        ("b", 2, True),
    ]
    assert len(read_feedback(root, USE_CASE.name, since=NOW.date() + dt.timedelta(days=1))) == 0


@pytest.mark.parametrize(
    "labels, error",
    [
        ({"_request_id": ["a"]}, "column 'label' is missing"),
        ({"_request_id": ["a"], "label": ["maybe"]}, "label 'maybe' is not a yes/no answer"),
        ({"_request_id": ["a"], "label": [True], "_row": [-1]}, "_row must be a record's"),
        ({"_request_id": [None], "label": [True]}, "a request id or a label is empty"),
    ],
)
def test_malformed_feedback_is_a_one_line_error_and_nothing_is_written(tmp_path, labels, error):
    with pytest.raises(ValueError, match=error):
        write_feedback(str(tmp_path), USE_CASE.name, pd.DataFrame(labels))
    assert not (tmp_path / FEEDBACK).exists()


def test_labels_join_captured_answers_by_request_and_position(tmp_path):
    """Four answers of one request, labelled; a label for a request that was never captured
    joins nothing. Decisions (alarm, alarm, none, none) against truths (yes, no, yes, no):
    precision 1/2, recall 1/2."""
    root = str(tmp_path)
    records = [dict(r) for r in LEARNER.sample_records] * 2
    request = _serve(root, records, [True, True, False, False])
    labels = pd.DataFrame(
        {
            "_request_id": [request] * 4 + ["never-captured"],
            "_row": [0, 1, 2, 3, 0],
            "label": [True, False, True, False, True],
        }
    )
    write_feedback(root, USE_CASE.name, labels)
    served = read_captured(root, USE_CASE.name, *WINDOW).to_pandas()
    quality = live_quality(served, read_feedback(root, USE_CASE.name, NOW.date()), LEARNER)
    assert quality == {
        "labelled": 4,
        "coverage": 1.0,
        "positives": 2,
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
    }
    assert live_quality(served, read_feedback(root, USE_CASE.name, NOW.date())[:0], LEARNER) is None


def test_the_monitoring_pass_reports_live_quality_when_labels_arrived(tmp_path):
    from pipelines.monitoring.monitor import check_served
    from pipelines.usecases.predictive_maintenance.generator import GeneratorConfig, generate_day
    from pipelines.usecases.predictive_maintenance.ingest import ingest_day

    root = str(tmp_path)
    day = dt.date(2026, 11, 2)
    fleet = GeneratorConfig(machines=10, minutes=60)
    ingest_day(day, root, generator=fleet)
    records = generate_day(day, fleet)[list(LEARNER.inputs)].sample(300, random_state=0)
    decisions = [i % 10 == 0 for i in range(300)]  # 30 alarms
    request = _serve(root, records.to_dict("records"), decisions)
    truth = [i % 20 == 0 for i in range(300)]  # 15 failures, each one alarmed
    labels = pd.DataFrame({"_request_id": request, "_row": range(300), "label": truth})
    write_feedback(root, USE_CASE.name, labels)

    found = check_served(root, USE_CASE, LEARNER, *WINDOW, [day.isoformat()], "3")
    assert found.live["labelled"] == 300
    assert (found.live["precision"], found.live["recall"]) == (0.5, 1.0)
    assert found.verdict.endswith("; live precision 0.50, recall 1.00 on 300 labelled answers")

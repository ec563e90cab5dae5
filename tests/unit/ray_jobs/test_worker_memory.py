"""What a training worker reports of its memory: the peak of its private memory, sampled, so
a buffer freed between two epochs' reports still shows; the object store's shared pages it
maps are not counted in it."""

import sys
import time

import numpy as np
import pytest

from ray_jobs.train import PrivatePeak, private_rss_bytes

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")


def test_a_buffer_freed_before_the_report_still_shows_in_the_private_peak():
    peak = PrivatePeak(interval=0.01)
    try:
        start = peak.read()
        buffer = np.ones(96 * 1024**2, dtype=np.uint8)  # touched: resident, private
        time.sleep(0.2)
        del buffer
        time.sleep(0.05)
        assert private_rss_bytes() < start + 48 * 1024**2  # gone now
        assert peak.read() >= start + 90 * 1024**2  # but the peak kept it
    finally:
        peak.stop()

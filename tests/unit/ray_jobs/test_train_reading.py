"""How the training driver asks Ray Data to list the lake: the footer-reader pool Ray starts
for a Parquet read is sized to the files read, not Ray's fixed 32 processes per read."""

import os

import pytest

from ray_jobs.train import FOOTER_READERS_VARIABLE, footer_readers_for


@pytest.mark.parametrize(("files", "readers"), [(1, "1"), (7, "1"), (11, "2"), (250, "25")])
def test_the_pool_is_sized_to_the_files_only_while_the_read_is_planned(files, readers, monkeypatch):
    monkeypatch.delenv(FOOTER_READERS_VARIABLE, raising=False)
    with footer_readers_for(files):
        assert os.environ[FOOTER_READERS_VARIABLE] == readers
    assert FOOTER_READERS_VARIABLE not in os.environ


def test_a_lake_of_thousands_of_files_gets_ray_s_largest_pool(monkeypatch):
    monkeypatch.delenv(FOOTER_READERS_VARIABLE, raising=False)
    with footer_readers_for(5000):
        assert os.environ[FOOTER_READERS_VARIABLE] == "32"


def test_an_operator_s_own_setting_is_kept(monkeypatch):
    monkeypatch.setenv(FOOTER_READERS_VARIABLE, "4")
    with footer_readers_for(1):
        assert os.environ[FOOTER_READERS_VARIABLE] == "4"
    assert os.environ[FOOTER_READERS_VARIABLE] == "4"

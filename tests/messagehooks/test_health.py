"""The sink's health file: rewritten in place at a fixed size, read back by the ingest."""

import time

from messagehooks.health import HEALTH_FILE_BYTES, SinkHealth, read_health, write_health


def test_a_report_reads_back_and_the_file_keeps_its_size(tmp_path):
    path = tmp_path / "health" / "sink.json"
    assert read_health(path) is None  # not reported yet
    failing = SinkHealth(
        False, "Delta commits fail: OSError: [Errno 28] No space left on device", time.time()
    )
    assert write_health(path, failing)
    assert read_health(path) == failing
    healthy = SinkHealth(True, "ok", time.time())  # shorter: the padding hides the old tail
    assert write_health(path, healthy)
    assert read_health(path) == healthy
    assert path.stat().st_size == HEALTH_FILE_BYTES


def test_a_long_detail_is_cut_to_fit_the_file(tmp_path):
    path = tmp_path / "sink.json"
    assert write_health(path, SinkHealth(False, "x" * 5000, 1.0))
    report = read_health(path)
    assert report is not None
    assert not report.healthy
    assert path.stat().st_size == HEALTH_FILE_BYTES


def test_an_unreadable_report_counts_as_none(tmp_path):
    path = tmp_path / "sink.json"
    path.write_text("{not json")
    assert read_health(path) is None

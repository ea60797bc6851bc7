"""The invocations' durations split by timestamps (localtwin.replay.waits): calls matched to their sends."""

from __future__ import annotations

import pytest

from localtwin.replay.meter import RequestTimes
from localtwin.replay.waits import invocation_waits, read_send_logs
from localtwin.runtime.report import Report, Timing


def _report(pid: int, start: float, end: float, cpu_ms: float, wait_ms: float) -> Report:
    return Report(
        "id", (end - start) * 1000, 0, 1024, 100, None, cpu_ms, wait_ms=wait_ms,
        timing=Timing(pid, start, start + 0.001, end - 0.002, end),
    )  # fmt: skip


def test_each_call_is_matched_to_its_first_send_after_the_previous_answer(tmp_path) -> None:
    # Worker 7 sends on port 5000: headers and body of call 1 (at 10.010 and 10.011), then call 2 (10.050).
    (tmp_path / "7").write_text("10.010000 5000\n10.011000 5000\n10.050000 5000\n10.0")  # last line cut short
    (tmp_path / "8").write_text("")
    logs = read_send_logs(tmp_path)
    assert logs == {7: [(10.01, 5000), (10.011, 5000), (10.05, 5000)], 8: []}
    requests = [
        RequestTimes(5000, "DynamoDB.BatchWriteItem", 10.014, 10.030, 10.031),
        RequestTimes(5000, "DynamoDB.BatchWriteItem", 10.052, 10.060, 10.0605),
        RequestTimes(6000, "Kinesis.GetRecords", 10.020, 10.040, 10.041),  # the mapping's: not a worker's
    ]
    waits = invocation_waits([_report(7, 10.0, 10.1, 40.0, 5.0)], requests, logs)
    assert waits.calls == 2 and waits.unmatched_calls == 0
    assert waits.queued_s == pytest.approx(0.004 + 0.002)
    assert waits.handled_s == pytest.approx(0.016 + 0.008)
    assert waits.written_back_s == pytest.approx(0.001 + 0.0005)
    assert waits.event_delivery_s == pytest.approx(0.001)
    assert waits.response_read_s == pytest.approx(0.002)
    assert waits.on_core_s == pytest.approx(0.040) and waits.run_queue_s == pytest.approx(0.005)
    assert waits.rest_s == pytest.approx(0.1 - 0.040 - 0.005 - 0.006 - 0.024 - 0.0015 - 0.003)


def test_calls_outside_an_invocation_or_of_another_worker_are_not_counted(tmp_path) -> None:
    (tmp_path / "7").write_text("20.500000 5000\n")
    (tmp_path / "9").write_text("10.020000 5001\n")
    requests = [
        RequestTimes(5000, "DynamoDB.BatchWriteItem", 20.501, 20.51, 20.52),  # worker 7, after its invocation
        RequestTimes(5001, "DynamoDB.BatchWriteItem", 10.021, 10.03, 10.031),  # worker 9's
    ]
    waits = invocation_waits([_report(7, 10.0, 10.1, 40.0, 5.0)], requests, read_send_logs(tmp_path))
    assert waits.calls == 0 and waits.queued_s == 0.0
    assert waits.rest_s == pytest.approx(0.1 - 0.045 - 0.003)

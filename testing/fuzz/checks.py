"""The fuzzer's checks: :func:`expect` asks the accounting oracle (:mod:`testing.accounting`)
what must come of a case's batch, from the generator's labels and the sinks' chosen
failures; :func:`check` lists every way the handler's response, sinks and log lines differ
from it; :func:`leaks` finds a canary (a payload's or the credentials').
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from testing import accounting
from testing.accounting import Expected
from testing.doubles import FakeQuarantine, FakeSink
from testing.fuzz.cases import CANARY, Case

CANARY_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAZQCANARY00000KEY",
    "AWS_SECRET_ACCESS_KEY": "zqcanary/Secret+Access/Key0000000000000000",
    "AWS_SESSION_TOKEN": "zqcanarySessionToken" + "Q" * 40,
}


def expect(case: Case) -> Expected | None:
    """What must come of ``case``'s event; ``None`` when it is no stream batch (it must be rejected)."""
    return accounting.expect(case.event, case.contents, case.sink_fails or (), case.quarantine_fails or ())


def _log_docs(text: str) -> list[dict[str, Any]]:
    docs = []
    for line in text.splitlines():
        if line.strip():
            docs.append(json.loads(line))  # every line the function writes is one JSON object
    return docs


def check(expected: Expected, response: Any, logs: str, sink: Any, quarantine: Any) -> list[str]:
    """Every way the handler's answer to a stream batch is wrong (empty: it is right).

    ``sink`` and ``quarantine`` are what the function was given: the doubles
    (:mod:`testing.doubles`) are checked; the response sink and the log-line quarantine
    are seen through the response and the log lines.
    """
    problems = accounting.check(
        expected,
        response,
        sink if isinstance(sink, FakeSink) else None,
        quarantine if isinstance(quarantine, FakeQuarantine) else None,
    )
    docs = _log_docs(logs)
    lines = [d for d in docs if "_aws" not in d]
    emf = [d for d in docs if "_aws" in d]
    got_q: Counter[tuple[Any, Any]] = Counter()
    for doc in lines:
        if doc.get("message") == "record quarantined":
            if doc.get("level") != "WARNING" or not doc.get("reason"):
                problems.append("a 'record quarantined' line without WARNING level or reason")
            rid = doc.get("record_id")
            rid = None if isinstance(rid, str) and rid.startswith("unidentified-") else rid
            got_q[(rid, doc.get("sequence_number"))] += 1
    want_q = Counter((expected.record_ids[i], expected.sequence_numbers[i]) for i in expected.indices("quarantined"))
    if got_q != want_q:
        problems.append(
            f"quarantine log lines {sorted(got_q.items(), key=str)[:4]} != expected {sorted(want_q.items(), key=str)[:4]}"
        )
    want = expected.counts()
    scored = [d for d in lines if d.get("message") == "batch scored"]
    if len(scored) != 1 or {k: scored[0].get(k) for k in want} != want:
        problems.append(f"'batch scored' line(s) {[{k: d.get(k) for k in want} for d in scored]} != {want}")
    if len(emf) != 1 or {k: emf[0].get(k) for k in want} != want:
        problems.append("the EMF document's counts differ")
    return problems


def leaks(text: str) -> bool:
    """Whether ``text`` carries a canary (a payload's, or the credentials')."""
    lowered = text.lower()
    return CANARY in lowered or any(v.lower() in lowered for v in CANARY_ENV.values())

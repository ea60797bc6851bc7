"""Tallying the function's log lines: its EMF counts, the records it quarantined, its predict time.

Only invocations that returned count: one killed or timed out after its lines were
written is delivered again, and its records counted then.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from localtwin.mapping.stats import MappingStats


@dataclass
class FunctionTally:
    """The function's log lines, summed over the invocations that returned."""

    metrics: Counter[str] = field(default_factory=Counter)
    quarantined: dict[str, str] = field(default_factory=dict)  # record id -> reason
    predict_s: float = 0.0
    #: The candidate's EMF counts in shadow (``ShadowRecords``, ``ShadowPredictErrors``, ...), summed.
    shadow: Counter[str] = field(default_factory=Counter)


def tally_logs(stats: MappingStats) -> FunctionTally:
    """Sum the EMF documents; collect the ``record quarantined`` and ``batch scored`` lines.

    Only invocations that returned count: one killed or timed out after its lines were
    written is delivered again, and its records counted then.
    """
    tally = FunctionTally()
    for call in stats.invocation_log:
        if call.result.error is not None:
            continue
        for line in getattr(call.result, "logs", []):
            if not line.startswith("{"):
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if "_aws" in doc:
                for name in ("RecordsIn", "RecordsPredicted", "RecordsSkipped", "RecordsQuarantined", "RecordsRetried"):
                    tally.metrics[name] += int(doc.get(name, 0))
                if "Label" not in doc:  # the per-label documents repeat the counts by label
                    for name in ("ShadowRecords", "ShadowAgreed", "ShadowLoadErrors", "ShadowPredictErrors",
                                 "ShadowWriteErrors", "ShadowSkipped"):  # fmt: skip
                        tally.shadow[name] += int(doc.get(name, 0))
            elif doc.get("message") == "record quarantined":
                tally.quarantined[doc["record_id"]] = str(doc.get("reason", ""))
            elif doc.get("message") == "batch scored":
                tally.predict_s += float(doc.get("predict_ms", 0.0)) / 1000
    return tally

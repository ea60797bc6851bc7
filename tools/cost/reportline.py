"""Parse Lambda's ``REPORT`` log line, as found in the base64 log tail of ``Invoke(LogType='Tail')``.

Lambda ends every invocation's log with one line of tab-separated ``Key: value unit``
fields, e.g. (with a trailing tab, as Lambda writes it)::

    REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3\tDuration: 12.34 ms\t
    Billed Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 18 MB\t
    Init Duration: 120.50 ms\t

``Init Duration`` appears on cold starts only; ``Restore Duration`` / ``Billed Restore
Duration`` with SnapStart; ``Status`` and ``Error Type`` when the platform ended the
invocation (timeout, out of memory, crash). An X-Ray ``XRAY TraceId: …`` line may follow.
The local runtime (:class:`tools.local.lambda_runtime.Report`) writes the same format.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

_FIELD = re.compile(r"^(?P<key>[A-Za-z][A-Za-z ]*?):\s*(?P<value>\S+)(?:\s+(?P<unit>ms|MB))?$")


class ReportLineError(ValueError):
    """The text holds no parseable ``REPORT`` line."""


@dataclass(frozen=True)
class ReportLine:
    """The figures of one ``REPORT`` line."""

    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None = None
    restore_ms: float | None = None
    status: str | None = None
    error_type: str | None = None

    @property
    def cold(self) -> bool:
        """A cold start: the line carries an init (or SnapStart restore) duration."""
        return self.init_ms is not None or self.restore_ms is not None


def parse_report_line(line: str) -> ReportLine:
    """Parse one ``REPORT RequestId: …`` line.

    Raises
    ------
    ReportLineError
        If the line is not a REPORT line or lacks one of the always-present fields.
    """
    text = line.strip("\r\n")
    if not text.startswith("REPORT "):
        raise ReportLineError(f"not a REPORT line: {text[:80]!r}")
    fields: dict[str, str] = {}
    for part in text[len("REPORT ") :].split("\t"):
        match = _FIELD.match(part.strip())
        if match:
            fields[match["key"]] = match["value"]
    try:
        return ReportLine(
            request_id=fields["RequestId"],
            duration_ms=float(fields["Duration"]),
            billed_ms=int(float(fields["Billed Duration"])),
            memory_mb=int(fields["Memory Size"]),
            max_memory_mb=int(fields["Max Memory Used"]),
            init_ms=float(fields["Init Duration"]) if "Init Duration" in fields else None,
            restore_ms=float(fields["Restore Duration"]) if "Restore Duration" in fields else None,
            status=fields.get("Status"),
            error_type=fields.get("Error Type"),
        )
    except KeyError as missing:
        raise ReportLineError(f"REPORT line without {missing.args[0]!r}: {text[:200]!r}") from None
    except ValueError as bad:
        raise ReportLineError(f"REPORT line with a malformed number ({bad}): {text[:200]!r}") from None


def find_report_line(log_text: str) -> ReportLine:
    """The last ``REPORT`` line of a log (the tail may start mid-line; the REPORT line is last)."""
    for line in reversed(log_text.splitlines()):
        if line.startswith("REPORT RequestId:"):
            return parse_report_line(line)
    raise ReportLineError(f"no REPORT line in the log tail ({len(log_text)} characters)")


def report_from_log_result(log_result_b64: str) -> ReportLine:
    """The REPORT line of an ``Invoke`` response's ``LogResult`` (base64 of the last 4 KB of log)."""
    return find_report_line(base64.b64decode(log_result_b64).decode("utf-8", errors="replace"))

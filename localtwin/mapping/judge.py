"""Judging a response: how Lambda reads one invocation's outcome for a stream batch.

A function error (the handler raised, timed out, or its runtime died) fails the whole
batch. With ``ReportBatchItemFailures``, the batch resumes at the lowest reported
sequence number; an empty or null list, or an empty or null response, is success; a
null or empty ``itemIdentifier``, a wrong key, or a sequence number that is not in the
batch fails the whole batch (an identifier that is not in the batch is unverified in
AWS: treating it as a whole-batch failure can only redeliver, never lose, records).
Without ``ReportBatchItemFailures`` the response is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Verdict:
    """How Lambda reads one invocation's outcome.

    Attributes
    ----------
    kind : {"success", "partial", "error", "invalid"}
        ``error``: the function failed (raised, timed out, crashed); ``invalid``: the
        response's ``batchItemFailures`` could not be read (whole batch failed).
    resume_at : int
        For ``partial``: index in the batch of the lowest reported record.
    reason : str
        For ``error`` / ``invalid``: what went wrong.
    """

    kind: Literal["success", "partial", "error", "invalid"]
    resume_at: int = 0
    reason: str = ""


def judge_response(
    payload: Any, error: dict[str, Any] | None, sequence_numbers: list[str], report_batch_item_failures: bool = True
) -> Verdict:
    """Read an invocation's outcome as Lambda does for a stream batch.

    Parameters
    ----------
    payload : Any
        The parsed response.
    error : dict or None
        The function error, if any.
    sequence_numbers : list of str
        The batch's sequence numbers, in order.
    report_batch_item_failures : bool
        Whether the mapping has ``FunctionResponseTypes=["ReportBatchItemFailures"]``;
        without it the response is ignored.

    Returns
    -------
    Verdict
    """
    if error is not None:
        kind = error.get("errorType") if isinstance(error, dict) else None
        return Verdict("error", reason=str(kind or "Unhandled"))
    if not report_batch_item_failures or payload is None:
        return Verdict("success")
    if not isinstance(payload, dict):
        return Verdict("invalid", reason=f"response is a {type(payload).__name__}, not an object")
    failures = payload.get("batchItemFailures")
    if failures is None:
        return Verdict("success")
    if not isinstance(failures, list):
        return Verdict("invalid", reason="batchItemFailures is not a list")
    if not failures:
        return Verdict("success")
    position = {sequence: i for i, sequence in enumerate(sequence_numbers)}
    lowest: int | None = None
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return Verdict("invalid", reason=f"batchItemFailures holds {item!r}: no itemIdentifier string")
        index = position.get(identifier)
        if index is None:
            return Verdict("invalid", reason=f"itemIdentifier {identifier!r} is not a sequence number of this batch")
        lowest = index if lowest is None else min(lowest, index)
    assert lowest is not None
    return Verdict("partial", resume_at=lowest)

"""Make the function's reserved concurrency what ``[function] reserved_concurrency`` says. Idempotent.

Reserved concurrency is a property of the function, not of a version or an alias: it applies at
once to every invocation (stream batches, HTTP requests, function URL) and needs no new version.
It does two things (docs/aws-notes.md §7):

* it sets that many concurrent executions aside for this function out of the account's pool, so
  that other functions in the account (or a burst of them) can never take them;
* it caps the function at that many: an invocation beyond it is throttled. Lambda retries a
  throttled stream batch (the records wait in the shard, nothing is lost); a throttled HTTP
  request is answered 429 by the HTTP API.

``reserved_concurrency`` unset means no reservation: a reservation found on the function (set in
the console, or by an earlier ``deploy.toml``) is removed, as ``make deploy`` removes any other
setting that ``deploy.toml`` no longer holds.
"""

from __future__ import annotations

from typing import Any

from release.aws import call_with_retry

__all__ = ["apply_reserved_concurrency", "reserved_concurrency"]


def reserved_concurrency(lam: Any, function_name: str) -> int | None:
    """The function's reserved concurrency, or ``None`` when it has none (``GetFunctionConcurrency``)."""
    value = lam.get_function_concurrency(FunctionName=function_name).get("ReservedConcurrentExecutions")
    return None if value is None else int(value)


def apply_reserved_concurrency(lam: Any, function_name: str, wanted: int | None) -> list[str]:
    """Put or delete the function's reserved concurrency so that it is ``wanted``.

    Parameters
    ----------
    lam : botocore client
        A Lambda client.
    function_name : str
        The function (name or unqualified ARN).
    wanted : int or None
        ``[function] reserved_concurrency``; ``None`` removes any reservation.

    Returns
    -------
    list of str
        The change made (``[]`` when the function already has ``wanted``: no call that changes
        anything is made then).
    """
    current = reserved_concurrency(lam, function_name)
    if current == wanted:
        return []
    if wanted is None:
        call_with_retry(lam, "delete_function_concurrency", function_name)
    else:
        call_with_retry(lam, "put_function_concurrency", function_name, ReservedConcurrentExecutions=wanted)
    return [f"ReservedConcurrentExecutions: {current!r} -> {wanted!r}"]

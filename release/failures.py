"""What an AWS failure means for the user: one message saying what happened and what to run.

A release command that fails on an AWS call (it could not reach the endpoint, the connection
dropped, the answer timed out, AWS refused or failed the call) ends with a message naming the
endpoint and the call, whether the function had been changed before it (from the
:class:`release.aws.CallLog`), and the command that finishes or undoes what was started. No
traceback reaches the user.
"""

from __future__ import annotations

from release.aws import READ_TIMEOUT_ENV, CallLog, error_code

#: Error codes AWS uses when it throttles a caller.
THROTTLING = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "SlowDown", "RequestLimitExceeded"}
)


def _call(log: CallLog, operation: str | None = None) -> str:
    return operation or log.last or "an AWS call"


def what_happened(exc: BaseException, log: CallLog) -> str:
    """One sentence about a botocore error: which call, which endpoint, and what went wrong."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    endpoint = getattr(exc, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
    if isinstance(exc, ReadTimeoutError):
        return (
            f"{endpoint} did not answer {_call(log)} in time (raise {READ_TIMEOUT_ENV} if it is slow); "
            "AWS may or may not have applied it"
        )
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError):
        return (
            f"cannot reach {endpoint} ({_call(log)}): check the network, AWS_ENDPOINT_URL "
            "and the region (AWS_DEFAULT_REGION)"
        )
    if isinstance(exc, ConnectionClosedError):
        return f"the connection to {endpoint} was lost during {_call(log)}; AWS may or may not have applied it"
    if isinstance(exc, ClientError):
        code = error_code(exc) or "?"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = exc.response.get("Error", {}).get("Message", "")
        operation = _call(log, getattr(exc, "operation_name", None))
        if code in THROTTLING or status == 429:
            return f"AWS throttled {operation} ({code}) and kept doing so over every retry"
        if isinstance(status, int) and status >= 500:
            return f"AWS failed {operation} with HTTP {status} ({code}: {message})"
        return f"AWS refused {operation}: {code}: {message}"
    return f"{_call(log)} failed: {exc}"


def failure_message(command: str, exc: BaseException, log: CallLog, rerun: str) -> str:
    """The full message for a release command that failed on an AWS call.

    Parameters
    ----------
    command : str
        The command (``relink``, ``deploy``, ...).
    exc : BaseException
        The botocore error.
    log : CallLog
        The calls the command made.
    rerun : str
        The make command that runs it again (``make relink LAYER_ARN=...``).
    """
    happened = what_happened(exc, log)
    if command in ("publish-deps-layer", "releases") or not log.function_changed():
        consequence = f"Nothing on the function was changed. Run `{rerun}` again once AWS is reachable" + (
            " (it reuses a layer version already published from the same zip)." if "publish" in command else "."
        )
    elif command == "abort":
        consequence = (
            "The undo is itself unfinished: run `make release-abort` again; `make releases` shows what AWS holds."
        )
    else:
        consequence = (
            "The release is unfinished: the alias serves what it served before unless its move went through. "
            f"`make releases` shows what AWS holds; run `{rerun}` again to finish it, or `make release-abort` "
            "to undo it."
        )
    return f"{command}: {happened}. {consequence}"

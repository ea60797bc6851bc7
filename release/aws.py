"""Talking to Lambda: boto3 clients, lookups, waiters, and retries on concurrent updates.

Every change to the function goes through :func:`call_with_retry`, which waits out
``ResourceConflictException`` (an earlier update still being applied) with back-off;
:func:`wait_updated` and :func:`wait_active` block until Lambda has applied a change, and
:func:`wait_version_active` until a published version can be invoked (SnapStart's snapshot
taken), showing progress on a terminal when that takes more than a few seconds.

Clients are bounded (:func:`client_config`): an interactive command gives up on an endpoint
it cannot reach within about ten seconds instead of retrying for a minute. CI can allow
more through the environment:

``RELEASE_CONNECT_TIMEOUT_S``  seconds to open a connection (default 2)
``RELEASE_READ_TIMEOUT_S``     seconds to wait for an answer (default 60)
``RELEASE_MAX_ATTEMPTS``       tries per call, the first included (default 3; botocore's standard retry mode)

Every call a client makes is noted in :class:`CallLog` (botocore's ``before-call`` event), so an
error can say which call failed and whether the function had been changed before it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from release.errors import ReleaseError

#: Updates that meet ``ResourceConflictException`` are tried this often in all ...
RETRY_ATTEMPTS = 5
#: ... waiting ``RETRY_BASE_DELAY_S * 2**n`` seconds before try n + 2.
RETRY_BASE_DELAY_S = 2.0


def _sleep(seconds: float) -> None:
    """Wait between retries (a seam for tests)."""
    time.sleep(seconds)


#: Environment variables that bound every client (see the module docstring), with their defaults.
CONNECT_TIMEOUT_ENV, READ_TIMEOUT_ENV, MAX_ATTEMPTS_ENV = (
    "RELEASE_CONNECT_TIMEOUT_S",
    "RELEASE_READ_TIMEOUT_S",
    "RELEASE_MAX_ATTEMPTS",
)
DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S, DEFAULT_MAX_ATTEMPTS = 2.0, 60.0, 3
#: Lambda operations that change the function (not its layers): a failure after one of them
#: leaves a release unfinished.
FUNCTION_CHANGES = frozenset(
    {
        "CreateFunction",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "PublishVersion",
        "CreateAlias",
        "UpdateAlias",
        "DeleteAlias",
        "DeleteFunction",
        "TagResource",
        "UntagResource",
    }
)
#: Seconds a wait may take before progress is shown (on a terminal only).
PROGRESS_AFTER_S = 3.0


def _env_number(name: str, default: float, low: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ReleaseError(f"{name}={text!r} is not a number (default {default:g})") from None
    if value < low:
        raise ReleaseError(f"{name}={text!r} must be at least {low:g}")
    return value


def client_config() -> Any:
    """The botocore ``Config`` of every release client: bounded timeouts and tries (module docstring).

    Raises
    ------
    ReleaseError
        If one of the environment variables is not a number in range.
    """
    from botocore.config import Config

    return Config(
        connect_timeout=_env_number(CONNECT_TIMEOUT_ENV, DEFAULT_CONNECT_TIMEOUT_S, 0.1),
        read_timeout=_env_number(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT_S, 0.1),
        retries={"mode": "standard", "total_max_attempts": int(_env_number(MAX_ATTEMPTS_ENV, DEFAULT_MAX_ATTEMPTS, 1))},
    )


@dataclass
class CallLog:
    """The AWS calls a set of clients started, in order, as ``Service.Operation`` (``Lambda.PublishVersion``)."""

    calls: list[str] = field(default_factory=list)

    def note(self, model: Any, **_: Any) -> None:
        """botocore ``before-call`` handler."""
        self.calls.append(f"{model.service_model.service_id}.{model.name}")

    @property
    def last(self) -> str | None:
        """The most recent call (the one an error came from)."""
        return self.calls[-1] if self.calls else None

    def function_changed(self) -> bool:
        """Whether a call that changes the function was started (it may have been applied)."""
        return any(call.split(".", 1)[-1] in FUNCTION_CHANGES for call in self.calls if call.startswith("Lambda."))


@dataclass(frozen=True)
class Clients:
    """The boto3 clients a release needs.

    Attributes
    ----------
    lambda_ : botocore client
        A ``lambda`` client.
    s3 : botocore client
        An ``s3`` client, used only to upload zips over
        :data:`release.upload.DIRECT_UPLOAD_LIMIT`.
    sts : botocore client or None
        An ``sts`` client for the caller's identity (recorded with each release); ``None``
        records the caller as unknown.
    log : CallLog
        The calls made through clients built by :meth:`from_session`.
    cloudwatch : botocore client or None
        A ``cloudwatch`` client: a canary's alarms (:mod:`release.alarms`); ``None`` when not needed.
    """

    lambda_: Any
    s3: Any
    sts: Any = None
    log: CallLog = field(default_factory=CallLog)
    cloudwatch: Any = None

    @classmethod
    def from_session(cls, session: Any = None) -> Clients:
        """Clients from a boto3 session (default: credentials and region the usual way), bounded by
        :func:`client_config`, each call noted in :attr:`log`."""
        import boto3

        session = session or boto3.Session()
        config = client_config()
        log = CallLog()
        lam, s3, sts, cloudwatch = (
            session.client(service, config=config) for service in ("lambda", "s3", "sts", "cloudwatch")
        )
        for client in (lam, s3, sts, cloudwatch):
            client.meta.events.register("before-call", log.note)
        return cls(lam, s3, sts, log, cloudwatch)

    def caller(self) -> str:
        """The caller's ARN (STS ``GetCallerIdentity``), ``unknown`` without an STS client."""
        if self.sts is None:
            return "unknown"
        return str(self.sts.get_caller_identity()["Arn"])


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError``; ``None`` for any other exception."""
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def paginate(client: Any, operation: str, key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item under ``key`` on every page of a paginated ``operation``."""
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def list_layer_versions(lam: Any, layer_name: str) -> Iterator[dict[str, Any]]:
    """Every version of a layer (``ListLayerVersions``), as Lambda lists them."""
    return paginate(lam, "list_layer_versions", "LayerVersions", LayerName=layer_name)


@contextlib.contextmanager
def progress(message: str, after_s: float = PROGRESS_AFTER_S) -> Iterator[None]:
    """Show ``message`` and the seconds elapsed on stderr while the block runs longer than ``after_s``.

    Only on a terminal: redirected output (CI, a log file) stays free of progress lines.
    """
    if not sys.stderr.isatty():
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        if done.wait(after_s):
            return
        while not done.wait(1.0):
            print(f"\r  {message} ... {time.monotonic() - started:.0f} s", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _none_if_not_found(call: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def get_configuration(lam: Any, name: str, qualifier: str | None = None) -> dict[str, Any] | None:
    """The function's (or a version's / alias's) configuration, ``None`` if it does not exist."""
    found: dict[str, Any] | None = _none_if_not_found(
        lam.get_function_configuration, FunctionName=name, **({"Qualifier": qualifier} if qualifier else {})
    )
    return found


def get_alias(lam: Any, name: str, alias: str) -> dict[str, Any] | None:
    """The alias (``FunctionVersion``, ``RoutingConfig``, ...), ``None`` if there is no such alias (or function)."""
    found: dict[str, Any] | None = _none_if_not_found(lam.get_alias, FunctionName=name, Name=alias)
    return found


def get_alias_version(lam: Any, name: str, alias: str) -> str | None:
    """The version the alias points at, ``None`` if there is no such alias (or function)."""
    found = get_alias(lam, name, alias)
    return str(found["FunctionVersion"]) if found is not None else None


def call_with_retry(lam: Any, operation: str, name: str, **kwargs: Any) -> Any:
    """Call ``lam.<operation>(FunctionName=name, ...)``, retrying while another update is in progress.

    ``ResourceConflictException`` means the function is still applying an earlier
    change. Wait for it to settle and back off (2, 4, 8, 16 s), at most
    :data:`RETRY_ATTEMPTS` tries in all; any other error is raised at once.

    Parameters
    ----------
    lam : botocore client
    operation : str
        A Lambda client method that takes ``FunctionName``, e.g. ``update_function_configuration``.
    name : str
        The function.
    **kwargs
        The operation's other parameters.

    Raises
    ------
    ReleaseError
        If the function is still busy after the last try.
    """
    call = getattr(lam, operation)
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return call(FunctionName=name, **kwargs)
        except Exception as exc:
            if error_code(exc) != "ResourceConflictException":
                raise
            if attempt == RETRY_ATTEMPTS - 1:
                raise ReleaseError(
                    f"function {name} is still busy with another update after {RETRY_ATTEMPTS} tries "
                    f"({exc}); check `aws lambda get-function-configuration --function-name {name}` and run again"
                ) from None
            delay = RETRY_BASE_DELAY_S * 2**attempt
            print(f"  {name}: an update is in progress; waiting {delay:g}s, then retrying", file=sys.stderr)
            with contextlib.suppress(ReleaseError):  # a failed earlier update does not block the next
                wait_updated(lam, name)
            _sleep(delay)
    raise AssertionError("unreachable")


def update_and_wait(lam: Any, operation: str, name: str, **kwargs: Any) -> None:
    """:func:`call_with_retry` an update of the function, then :func:`wait_updated` for it."""
    call_with_retry(lam, operation, name, **kwargs)
    wait_updated(lam, name)


def _wait(lam: Any, name: str, waiter: str, reason_key: str, message: str) -> None:
    """Run the function waiter ``waiter`` (its ``_v2`` where boto3 has it).

    On failure raise ``message``, formatted with ``name`` and the reason the function's
    configuration gives under ``reason_key``.
    """
    from botocore.exceptions import WaiterError

    preferred = f"{waiter}_v2"
    try:
        with progress(f"waiting for Lambda to apply the change to {name}"):
            lam.get_waiter(preferred if preferred in getattr(lam, "waiter_names", []) else waiter).wait(
                FunctionName=name
            )
    except WaiterError as exc:
        reason = (get_configuration(lam, name) or {}).get(reason_key, str(exc))
        raise ReleaseError(message.format(name=name, reason=reason)) from None


def wait_updated(lam: Any, name: str) -> None:
    """Block until the function's last update has finished (``function_updated_v2``).

    Raises
    ------
    ReleaseError
        If the update failed or did not finish in the waiter's five minutes.
    """
    _wait(
        lam,
        name,
        "function_updated",
        "LastUpdateStatusReason",
        "function {name}: the update did not complete ({reason})",
    )


def wait_active(lam: Any, name: str) -> None:
    """Block until a new function is ``Active`` (``function_active_v2``).

    Raises
    ------
    ReleaseError
        If the function failed to become active.
    """
    _wait(lam, name, "function_active", "StateReason", "function {name} did not become active ({reason})")


def wait_mapping_settled(lam: Any, uuid: str, attempts: int = 30) -> None:
    """Block until an event source mapping is ``Enabled`` or ``Disabled``.

    Lambda refuses to update a mapping while it is Creating/Updating/Enabling/Disabling.

    Raises
    ------
    ReleaseError
        If it is still changing after ``attempts`` checks two seconds apart.
    """
    for _ in range(attempts):
        state = lam.get_event_source_mapping(UUID=uuid).get("State")
        if state in ("Enabled", "Disabled"):
            return
        _sleep(2)
    raise ReleaseError(f"event source mapping {uuid} stayed in state {state}; run `make deploy` again later")


#: Seconds between two reads of a published version's state (SnapStart optimises a version for
#: minutes; without SnapStart a version is ``Active`` at once) and how many reads in all (~10 min).
VERSION_POLL_DELAY_S = 3
VERSION_POLL_ATTEMPTS = 200


def wait_version_active(lam: Any, name: str, version: str) -> dict[str, Any]:
    """Block until a published version is ``Active`` (boto3's ``published_version_active``), for every release.

    A version that SnapStart optimises is ``Pending`` until its snapshot is taken; invoking
    it before then fails with ``SnapStartNotReadyException`` (docs/aws-notes.md §8), so
    the alias must not move to it earlier. One line on stderr reports the version's state
    and SnapStart's ``ApplyOn`` / ``OptimizationStatus``.

    Returns
    -------
    dict
        The version's configuration once it is ``Active``.

    Raises
    ------
    ReleaseError
        If the version failed (its ``StateReason``: an init that raised while the snapshot
        was taken, for instance) or was still not active after the waiter's attempts.
    """
    from botocore.exceptions import WaiterError

    try:
        with progress(f"waiting for version {version} of {name} to become Active"):
            lam.get_waiter("published_version_active").wait(
                FunctionName=name,
                Qualifier=version,
                WaiterConfig={"Delay": VERSION_POLL_DELAY_S, "MaxAttempts": VERSION_POLL_ATTEMPTS},
            )
    except WaiterError as exc:
        config = get_configuration(lam, name, version) or {}
        reason = config.get("StateReason") or str(exc)
        raise ReleaseError(
            f"version {version} of {name} did not become Active (state {config.get('State', 'unknown')}: {reason}); "
            "the alias was not moved. Fix the cause (`make invoke` runs the init locally) and release again"
        ) from None
    config = get_configuration(lam, name, version) or {}
    snap = config.get("SnapStart") or {}
    print(
        f"  version {version} of {name}: {config.get('State', 'Active')}; SnapStart {snap.get('ApplyOn', 'None')}, "
        f"optimization {snap.get('OptimizationStatus', 'Off')}",
        file=sys.stderr,
    )
    return config

"""A CPU quota for one process: a cgroup with CFS bandwidth control (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``).

Lambda gives a function CPU in proportion to its memory, one full vCPU at 1,769 MB
(docs/aws-notes.md §5). The Linux mechanism for "this share of one CPU" is CFS bandwidth
control: a cgroup may run ``quota`` microseconds of CPU per ``period``. To check the
projection, a warm local worker is moved into such a cgroup with ``quota = period x
memory / 1769`` and timed.

Only a real quota is used. Where neither a cgroup v2 hierarchy with the ``cpu``
controller enabled for children nor a writable cgroup v1 ``cpu`` hierarchy exists (no
root, a read-only ``/sys/fs/cgroup``), :class:`CpuQuota` raises
:class:`QuotaUnavailableError` saying why, and the check is skipped and reported as such;
nothing is imitated with ``taskset`` or duty cycles. This module never changes a controller setting of an existing cgroup; it
only creates (and removes) a child cgroup of its own.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

#: Linux's default CFS period.
DEFAULT_PERIOD_US = 100_000
#: The kernel's smallest quota.
MIN_QUOTA_US = 1_000


class QuotaUnavailableError(RuntimeError):
    """No CPU quota mechanism this process may use."""


def _mounts() -> list[tuple[str, str, set[str]]]:
    """``(mount point, fs type, super options)`` from /proc/self/mountinfo."""
    mounts: list[tuple[str, str, set[str]]] = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return mounts
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, tail = left.split(), right.split()
        if len(parts) >= 5 and len(tail) >= 3:
            mounts.append((parts[4], tail[0], set(tail[2].split(","))))
    return mounts


def find_hierarchy() -> tuple[int, Path]:
    """The cgroup hierarchy to create a child in: ``(version, directory)``.

    Raises
    ------
    QuotaUnavailableError
        Naming what was looked for.
    """
    reasons = []
    for point, fstype, _options in _mounts():
        base = Path(point)
        if fstype == "cgroup2":
            controllers = base / "cgroup.subtree_control"
            try:
                enabled = controllers.read_text().split()
            except OSError:
                continue
            if "cpu" in enabled and os.access(base, os.W_OK):
                return 2, base
            reasons.append(f"cgroup v2 at {point}: cpu controller not enabled for children")
    for point, fstype, options in _mounts():
        if fstype == "cgroup" and "cpu" in options:
            base = Path(point)
            if (base / "cpu.cfs_quota_us").exists() and os.access(base, os.W_OK):
                return 1, base
            reasons.append(f"cgroup v1 cpu at {point}: not writable by this user")
    raise QuotaUnavailableError("; ".join(reasons) or "no cgroup v1 or v2 cpu hierarchy is mounted")


class CpuQuota:
    """A child cgroup limited to ``fraction`` of one CPU; a context manager.

    Parameters
    ----------
    fraction : float
        Share of one CPU, e.g. ``128 / 1769``.
    period_us : int
        The CFS period (Linux default 100 ms). The quota is ``fraction x period``, at
        least 1 ms.
    """

    def __init__(self, fraction: float, period_us: int = DEFAULT_PERIOD_US) -> None:
        self.version, base = find_hierarchy()
        self.path = base / f"tools-cost-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.period_us = period_us
        self.fraction = fraction
        self._created = False

    def __enter__(self) -> CpuQuota:
        try:
            self.path.mkdir()
        except OSError as exc:
            raise QuotaUnavailableError(f"cannot create {self.path}: {exc}") from None
        self._created = True
        try:
            self.set_fraction(self.fraction)
        except OSError as exc:
            self.close()
            raise QuotaUnavailableError(f"cannot set a quota in {self.path}: {exc}") from None
        except BaseException:
            self.close()
            raise
        return self

    def set_fraction(self, fraction: float) -> None:
        """Change the quota to ``fraction`` of one CPU (``>= 1`` removes the limit)."""
        self.fraction = fraction
        quota = max(MIN_QUOTA_US, round(self.period_us * fraction))
        unlimited = fraction >= 1.0
        if self.version == 2:
            (self.path / "cpu.max").write_text(f"{'max' if unlimited else quota} {self.period_us}\n")
        else:
            (self.path / "cpu.cfs_period_us").write_text(f"{self.period_us}\n")
            (self.path / "cpu.cfs_quota_us").write_text(f"{-1 if unlimited else quota}\n")

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the cgroup."""
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            raise QuotaUnavailableError(f"cannot move process {pid} into {self.path}: {exc}") from None

    def throttled_ms(self) -> float:
        """Total time the cgroup has been throttled so far, in ms."""
        stats = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines() if " " in line)
        if "throttled_usec" in stats:
            return int(stats["throttled_usec"]) / 1000.0
        return int(stats.get("throttled_time", 0)) / 1e6

    def close(self) -> None:
        """Move any process left back to the parent cgroup and remove the cgroup."""
        if not self._created:
            return
        for _ in range(50):
            with contextlib.suppress(OSError):
                for pid in (self.path / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):
                        (self.path.parent / "cgroup.procs").write_text(f"{pid}\n")
            try:
                self.path.rmdir()
                self._created = False
                return
            except OSError:
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.close()

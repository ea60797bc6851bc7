"""SnapStart in the local twin: one environment initialised once, then cloned for every new environment.

On Lambda, with ``SnapStart.ApplyOn = PublishedVersions``, a version's init runs once when
it is published; the runtime then calls the *before snapshot* hooks and asks for
``GET /runtime/restore/next``, at which point Lambda snapshots the environment. A cold start
restores the snapshot: ``restore/next`` returns, the *after restore* hooks run, and the
runtime asks for its first invocation (``Restore Duration`` on the REPORT line covers that).

Here the snapshot is a *template* worker (:class:`Snapshot`): an interpreter started like
every worker (:mod:`localtwin.runtime.environment`) with ``AWS_LAMBDA_INITIALIZATION_TYPE=
snap-start``, which imports the handler's module (the function's init) and runs the before
snapshot hooks (``awslambdaric.lambda_runtime_hooks_runner``, over the ``snapshot_restore_py``
registry the runtime dir ships, as on Lambda), then waits. Each new environment is a
``fork`` of it (:meth:`Snapshot.clone`): the child takes the environment's own log pipes and
Runtime API address and runs the runtime client's main loop, which finds the handler
already imported, calls ``restore/next`` and the after restore hooks for real, and asks for
work. The before snapshot hooks ran once, in the template; each clone starts from a copy of
its memory, so what the after restore hooks do not renew is shared state, as on Lambda.

The template's init failing makes no snapshot (on Lambda the version fails to publish):
:meth:`Snapshot.wait_ready` returns ``False`` and the pool starts environments the usual way,
which then report the init error as they do without SnapStart.

A clone is the template's child, not this process's: :class:`ClonedProcess` stands in for
its ``subprocess.Popen`` (``pid``, ``poll``, ``wait``, ``returncode``, the log pipes); the
template reaps its children and reports each exit status over the control socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from localtwin.runtime.metering import cpu_seconds

#: Runs in the template worker: Lambda's sys.path, the function's init, the before snapshot
#: hooks, then one fork per request on the control socket (argv[2]); exit statuses go back on it.
_TEMPLATE = r"""
import importlib, json, os, select, signal, socket, sys, time, traceback
sys.dont_write_bytecode = True
opt = sys.argv[1]
site = "%s/python/lib/python%d.%d/site-packages" % (opt, sys.version_info[0], sys.version_info[1])
sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], site, opt + "/python", os.environ["LAMBDA_RUNTIME_DIR"]]
control = socket.socket(fileno=int(sys.argv[2]))
started = time.perf_counter()
try:
    importlib.import_module(os.environ["_HANDLER"].rsplit(".", 1)[0].replace("/", "."))
    from awslambdaric.lambda_runtime_hooks_runner import run_before_snapshot
    run_before_snapshot()
    # What of the runtime client can be in the snapshot: not its native client, which binds the
    # Runtime API's address when it is imported (each clone has its own).
    import awslambdaric.lambda_runtime_marshaller, awslambdaric.lambda_runtime_log_utils
    ready = {"ready": True, "init_ms": (time.perf_counter() - started) * 1000}
except BaseException as exc:
    traceback.print_exc()
    ready = {"ready": False, "error": "%s: %s" % (type(exc).__name__, exc)}
sys.stdout.flush()
sys.stderr.flush()
control.send(json.dumps(ready).encode())
if not ready["ready"]:
    sys.exit(1)
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda signum, frame: None)
while True:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        control.send(json.dumps({"exit": pid, "code": os.waitstatus_to_exitcode(status)}).encode())
    try:
        readable = select.select([control, wake_r], [], [])[0]
    except InterruptedError:
        continue
    if wake_r in readable:
        os.read(wake_r, 4096)
    if control not in readable:
        continue
    message, fds, _, _ = socket.recv_fds(control, 65536, 2)
    if not message:
        sys.exit(0)
    request = json.loads(message)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in (wake_r, wake_w):
            os.close(fd)
        control.close()
        os.setsid()
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        os.environ.update(request["env"])
        from awslambdaric.__main__ import main
        main([sys.argv[0], os.environ["_HANDLER"]])
        os._exit(0)
    for fd in fds:
        os.close(fd)
    control.send(json.dumps({"forked": request["id"], "pid": pid}).encode())
"""


class ClonedProcess:
    """A clone of the template, as much of ``subprocess.Popen`` as an environment uses."""

    def __init__(self, snapshot: Snapshot, pid: int, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self._snapshot, self.pid, self.stdout, self.stderr = snapshot, pid, stdout, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._snapshot.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self._snapshot.exit_code(self.pid, timeout=timeout if timeout is not None else 1e9)
        if code is None:
            raise subprocess.TimeoutExpired(f"clone {self.pid}", timeout or 0.0)
        self.returncode = code
        return code


class Snapshot:
    """The template worker of one function, initialised once and cloned per new environment.

    Parameters
    ----------
    command : list of str
        The interpreter and its options (``python -I -S``), as for any worker.
    opt : str
        The extracted layers (``/opt``).
    environment : dict
        The worker's environment (``AWS_LAMBDA_INITIALIZATION_TYPE`` is set to ``snap-start``).
    cwd : str
        The task root.
    sink : callable
        Where the template's log lines go (its init's), one line per call.
    """

    def __init__(
        self, command: list[str], opt: str, environment: dict[str, str], cwd: str, sink: Callable[[str], None]
    ) -> None:
        self._sink = sink
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._cond = threading.Condition()
        self._exits: dict[int, int] = {}
        self._forked: dict[int, int] = {}
        self._next_id = 0
        self._ready: bool | None = None
        self._gone = False
        self._fork_lock = threading.Lock()
        self.error = ""
        self.init_ms: float | None = None
        self.started_at = time.perf_counter()
        self._cpu_s = 0.0
        self.proc = subprocess.Popen(
            [*command, "-c", _TEMPLATE, opt, str(theirs.fileno())],
            cwd=cwd,
            env={**environment, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=[theirs.fileno()],
            start_new_session=True,
        )
        theirs.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._copy_logs, args=(stream,), daemon=True).start()
        threading.Thread(target=self._read_control, daemon=True).start()

    # --- the template's side of the conversation

    def _copy_logs(self, stream: IO[bytes] | None) -> None:
        assert stream is not None
        for raw in stream:
            self._sink(raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r").replace("\r", "\n"))

    def _read_control(self) -> None:
        while True:
            try:
                message = self._control.recv(65536)
            except OSError:
                message = b""
            with self._cond:
                if not message:
                    self._gone = True
                    if self._ready is None:
                        self._ready = False
                    self._cond.notify_all()
                    return
                doc: dict[str, Any] = json.loads(message)
                if "ready" in doc:
                    self._ready = bool(doc["ready"])
                    self.init_ms = doc.get("init_ms")
                    self.error = doc.get("error", "")
                elif "forked" in doc:
                    self._forked[doc["forked"]] = doc["pid"]
                elif "exit" in doc:
                    self._exits[doc["exit"]] = doc["code"]
                self._cond.notify_all()

    def wait_ready(self, timeout: float) -> bool:
        """Block until the template is initialised; ``False`` if its init failed (or took over ``timeout``)."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready is not None, timeout=timeout)
            return bool(self._ready)

    def exit_code(self, pid: int, timeout: float = 0.0) -> int | None:
        """A clone's exit status (``Popen.returncode``'s convention), ``None`` while it runs."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while pid not in self._exits:
                if self._gone:  # no template to report it: the process table says whether it lives
                    try:
                        os.kill(pid, 0)
                    except ProcessLookupError:
                        self._exits[pid] = -signal.SIGKILL
                        break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.1))
            return self._exits[pid]

    # --- clones

    def clone(self, environment: dict[str, str]) -> ClonedProcess:
        """Fork a new environment from the template, with ``environment``'s variables set over its own.

        Raises
        ------
        RuntimeError
            The template is not ready or has gone.
        """
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            with self._fork_lock:
                with self._cond:
                    if not self._ready or self._gone:
                        raise RuntimeError(f"the snapshot cannot be restored ({self.error or 'template gone'})")
                    self._next_id += 1
                    request = self._next_id
                message = json.dumps({"id": request, "env": environment}).encode()
                socket.send_fds(self._control, [message], [out_w, err_w])
                with self._cond:
                    self._cond.wait_for(lambda: request in self._forked or self._gone, timeout=10)
                    pid = self._forked.pop(request, None)
            if pid is None:
                raise RuntimeError("the snapshot's template did not fork a clone")
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w):
                os.close(fd)
        return ClonedProcess(self, pid, open(out_r, "rb", buffering=0), open(err_r, "rb", buffering=0))

    def cpu_s(self) -> float:
        """The template's CPU seconds so far (what was last read of it, once it is gone)."""
        if self.proc.poll() is None:
            self._cpu_s = max(self._cpu_s, cpu_seconds(self.proc.pid))
        return self._cpu_s

    def close(self) -> None:
        """Stop the template (clones are stopped by their environments)."""
        if self.proc.poll() is None:
            self.cpu_s()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._control.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def python_command() -> list[str]:
    """The interpreter every worker runs, isolated (``-I -S``)."""
    return [sys.executable, "-I", "-S"]

"""A local Lambda runtime: execution environments running AWS's runtime client on our zips.

:class:`localtwin.runtime.pool.LocalLambda` is a pool of execution environments for one
function. Each environment is a worker process started the way Lambda's Python runtime
starts one (:mod:`localtwin.runtime.environment`), running ``awslambdaric`` against a
Runtime API server of its own (:mod:`localtwin.runtime.api`).

``api``          the Runtime API server one environment's runtime client talks to
``staging``      the zips extracted once; the runtime dir (awslambdaric, boto3) provisioned once
``metering``     a worker's peak RSS and CPU seconds, read from ``/proc``
``report``       what an invocation returns: :class:`~localtwin.runtime.report.InvokeResult`,
                 its ``REPORT`` figures, Lambda's payload limit
``environment``  one execution environment: its worker's lifecycle, one invocation at a time
``snapshot``     SnapStart: a template worker initialised once, forked per new environment
``pool``         :class:`~localtwin.runtime.pool.LocalLambda`: environments on demand, outcomes
                 turned into Lambda's errors and ``REPORT`` lines

Lambda's rules, as emulated:

* **Cold and warm.** An environment is started on demand (a cold start: its init is
  timed as *Init Duration*), reused while warm, one invocation at a time, at most
  ``max_environments`` at once; idle ones expire after ``idle_ttl_s`` (if given).
* **SnapStart** (``snap_start=True``). The init runs once, in a template worker, with
  the before-snapshot hooks; each new environment is a fork of it that restores
  (``restore/next``, the after-restore hooks) and is timed as *Restore Duration*, with
  ``RESTORE_START`` before it (:mod:`localtwin.runtime.snapshot`).
* **Timeout.** The timeout runs from the moment the runtime receives the event. A
  worker past it is killed (SIGKILL); the invocation fails with ``Sandbox.Timedout``
  and the environment is discarded. Init is bounded by ``max(10 s, timeout)``.
* **Memory.** *Max Memory Used* is the worker's peak RSS (``VmHWM``, a lifetime peak
  per environment, as Lambda reports it), sampled while the invocation runs and at its
  end. Above ``memory_mb`` the worker is killed and the invocation fails with
  ``Runtime.OutOfMemory``. No address-space rlimit: numpy/OpenBLAS reserve far more
  virtual memory than they use.
* **Crashes.** A worker that dies mid-invocation fails it with ``Runtime.ExitError``;
  a handler that cannot be loaded fails it with the runtime client's error type
  (``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``…). Either way the
  environment is discarded and the next invocation starts a cold one.
* **Logs.** The worker's stdout and stderr are captured per environment and forwarded
  line by line to the log sink, framed by ``START`` / ``END`` / ``REPORT`` lines
  (``INIT_START`` before a cold start).
* **Billing.** *Billed Duration* is the duration rounded up to the next 1 ms
  (:func:`pricing.billing.billed_ms`); on a cold start it includes *Init Duration*
  (on-demand functions are billed for init since August 2025).
* **CPU.** Each :class:`~localtwin.runtime.report.Report` also carries the worker's CPU
  time (user + system, all threads) during the invocation, from ``/proc/<pid>/stat``;
  its resolution is the kernel's clock tick (usually 10 ms), so average it over many
  invocations.

This file holds no imports: import the module you need.
"""

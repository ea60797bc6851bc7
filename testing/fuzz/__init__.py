"""Fuzzing the stream handler with malformed and hostile events.

``python -m testing.fuzz --cases 10000 --seed 1`` drives the real handler,
``lambda_function.lambda_handler``, in this process, with the environment set as on
Lambda (``MODEL_DIR`` on the reference text model in ``build/model``; a tiny tabular
model, trained into a temporary folder, for non-finite features; a typed one, with a string,
a number and a bool feature (:mod:`testing.fuzz.typed_model`), for strings, bools, nulls and
absent fields) and canary AWS
credentials. Each case is one event from a seeded :class:`random.Random`, in one of
:data:`CATEGORIES`; every record of a generated batch is labelled with what it
is (:mod:`testing.accounting`'s ``GOOD``, ``RAISES``, ``POISON`` or ``SKIP``), by the
generator, from what it built; the accounting oracle turns those labels into what the
handler must answer.

Part of the cases run with a results sink and a quarantine destination that fail on a
seeded subset of items, so the ``batchItemFailures`` paths are exercised too; the rest
with the response as the sink and the default quarantine (log lines).

Checks, per case:

* an event with no stream record at all (not an object, no ``Records`` list, or a
  non-empty one in which no record has eventSource ``aws:kinesis`` / ``aws:dynamodb``)
  raises :class:`~inference.events.UnsupportedEventError`, counted as *rejected*;
* anything else returns ``{"batchItemFailures": [...]}`` (strict JSON), whose
  identifiers are exactly those stream semantics ask for: the sequence numbers of the
  records from the cutoff on (the first record whose quarantine or result could not be
  kept, moved back to the nearest record with a sequence number), or ``[{"itemIdentifier":
  ""}]`` only when no record at or before the failure has one;
* every record is accounted for exactly once, as its label says before the cutoff:
  predicted (in the response's ``predictions`` or in the sink), quarantined (a
  ``record quarantined`` log line with a reason), skipped, or retried (from the cutoff
  on); the ``batch scored`` log line and the EMF document count the same;
* no log line or EMF document (INFO and above) carries a canary: every payload text
  holds one, and so do the AWS credentials in the environment; nor does the
  :class:`~inference.events.UnsupportedEventError` message of a rejected event.

Any other exception, or an invalid response, is a failure: its event is saved to
``build/fuzz/failures/<case>.json`` (whole; replay it with ``make invoke EVENT=...``),
the run goes on, and the command exits 1.
"""

from testing.accounting import OUTCOMES, Expected
from testing.fuzz.cases import CATEGORIES, Case, generate
from testing.fuzz.checks import CANARY_ENV, check, expect, leaks
from testing.fuzz.run import Failure, FuzzReport, format_report, run_fuzz

__all__ = [
    "CANARY_ENV",
    "CATEGORIES",
    "OUTCOMES",
    "Case",
    "Expected",
    "Failure",
    "FuzzReport",
    "check",
    "expect",
    "format_report",
    "generate",
    "leaks",
    "run_fuzz",
]

"""The demo: score a generated ingest of review texts through the built function.

Until the local stream replay exists (issue 4), this runs the function from the built
zips in one warm interpreter, batch after batch, on records drawn from the reference
data set plus a small share of malformed ones, and prints a summary.

Usage: ``python -m tools.demo [--records 1000] [--batch-size 100] [--poison-share 0.02]``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter

from tools.dataset import load_reviews
from tools.events import FIRST_SEQUENCE, kinesis_record
from tools.invoke import invoke

POISON_PAYLOADS = [
    b"\xff\xfe not utf-8",
    b'{"text": "unterminated',
    b'{"title": "no text field"}',
    b'{"text": 42}',
    b"[1, 2, 3]",
]


def make_ingest(records: int, poison_share: float, seed: int = 7) -> tuple[list[dict], dict[str, str]]:
    """Kinesis records (one shard) and the true label of each good one, by record id."""
    texts, labels = load_reviews()
    rng = random.Random(seed)
    out, truth = [], {}
    for i in range(records):
        seq = FIRST_SEQUENCE + i
        if rng.random() < poison_share:
            rec = kinesis_record(rng.choice(POISON_PAYLOADS), seq)
            if rng.random() < 0.2:
                rec["kinesis"]["data"] = "%%% not base64 %%%"
        else:
            k = rng.randrange(len(texts))
            rec = kinesis_record(json.dumps({"text": texts[k]}), seq)
            truth[rec["eventID"]] = labels[k]
        out.append(rec)
    return out, truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--poison-share", type=float, default=0.02)
    args = parser.parse_args(argv)
    if args.records < 1 or not 1 <= args.batch_size <= 10_000:
        parser.error("--records must be >= 1 and --batch-size between 1 and 10000 (Lambda's BatchSize range)")

    records, truth = make_ingest(args.records, args.poison_share)
    events = [{"Records": records[i : i + args.batch_size]} for i in range(0, len(records), args.batch_size)]
    print(f"scoring {len(records):,} records in {len(events)} batches of up to {args.batch_size} ...", file=sys.stderr)
    started = time.perf_counter()
    proc = invoke(events, many=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        print("demo: the function failed (see its logs above)", file=sys.stderr)
        return 1
    responses = json.loads(proc.stdout)
    logs = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    batches = [entry for entry in logs if entry.get("message") == "batch scored"]
    totals = Counter()
    for entry in batches:
        for key in ("RecordsIn", "RecordsPredicted", "RecordsSkipped", "RecordsQuarantined", "RecordsRetried"):
            totals[key] += entry[key]
    predictions = {rid: p for r in responses for rid, p in r.get("predictions", {}).items()}
    labels = Counter(p["label"] for p in predictions.values())
    agree = sum(predictions[rid]["label"] == label for rid, label in truth.items() if rid in predictions)
    reasons = Counter(entry["reason"].split(" (")[0] for entry in logs if entry.get("message") == "record quarantined")
    predict_ms = sorted(entry["predict_ms"] for entry in batches)
    print(
        f"""
records in       {totals["RecordsIn"]:>8,}
predicted        {totals["RecordsPredicted"]:>8,}   {", ".join(f"{k}: {v:,}" for k, v in labels.most_common())}
skipped          {totals["RecordsSkipped"]:>8,}
quarantined      {totals["RecordsQuarantined"]:>8,}   {"; ".join(f"{k}: {v}" for k, v in reasons.most_common())}
retried          {totals["RecordsRetried"]:>8,}
batches          {len(batches):>8,}   one predict call each; median predict {predict_ms[len(predict_ms) // 2]:.1f} ms
agreement        {agree / max(len(truth), 1):>8.1%}   predictions matching the data set's labels
wall time        {wall:>8.2f} s   including one cold start (imports, sha256 checks, model load)
"""
    )
    unaccounted = totals["RecordsIn"] - sum(totals[k] for k in totals if k != "RecordsIn")
    if unaccounted or totals["RecordsIn"] != len(records):
        print(f"demo: {unaccounted} records unaccounted for", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

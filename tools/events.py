"""Sample events in the exact shapes ``sam local generate-event`` emits.

``kinesis get-records`` and ``dynamodb update`` (aws-sam-cli's templates), with
payloads that fit the model. Used by ``make events``, the demo, the tests and the
benchmarks.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
KINESIS_ARN = "arn:aws:kinesis:EXAMPLE"
TABLE_STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899"
FIRST_SEQUENCE = 49545115243490985018280067714973144582180062593244200961

SAMPLE_TEXTS = [
    "A warm, funny and beautifully acted film that earns every one of its tears.",
    "Tedious, overlong and badly written; even the actors look bored.",
    "The best thing about this movie is the soundtrack, and that is not saying much.",
    "An inventive, moving story told with real wit and confidence.",
]


def kinesis_record(
    payload: bytes | str,
    sequence: int | str,
    shard: str = "shardId-000000000000",
    partition_key: str = "partitionKey-03",
    source_arn: str = KINESIS_ARN,
) -> dict[str, Any]:
    """One record of ``sam local generate-event kinesis get-records`` with ``payload`` as data."""
    raw = payload.encode() if isinstance(payload, str) else payload
    return {
        "kinesis": {
            "partitionKey": partition_key,
            "kinesisSchemaVersion": "1.0",
            "data": base64.b64encode(raw).decode(),
            "sequenceNumber": str(sequence),
            "approximateArrivalTimestamp": 1428537600.0,
        },
        "eventSource": "aws:kinesis",
        "eventID": f"{shard}:{sequence}",
        "invokeIdentityArn": "arn:aws:iam::EXAMPLE",
        "eventVersion": "1.0",
        "eventName": "aws:kinesis:record",
        "eventSourceARN": source_arn,
        "awsRegion": REGION,
    }


def kinesis_event(texts: list[str], field: str = "text", first_sequence: int = FIRST_SEQUENCE) -> dict[str, Any]:
    """A Kinesis batch whose records carry ``{field: text}`` JSON payloads."""
    return {"Records": [kinesis_record(json.dumps({field: t}), first_sequence + i) for i, t in enumerate(texts)]}


def dynamodb_update_event(texts: list[str] | None = None, field: str = "text") -> dict[str, Any]:
    """``sam local generate-event dynamodb update``: INSERT, MODIFY, REMOVE of item 101,
    with the model's text field added to each image."""
    a, b = (texts or SAMPLE_TEXTS)[:2]

    def image(message: str, text: str) -> dict[str, Any]:
        return {"Message": {"S": message}, "Id": {"N": "101"}, field: {"S": text}}

    def record(event_id: str, name: str, seq: str, size: int, new: dict | None, old: dict | None) -> dict[str, Any]:
        change: dict[str, Any] = {"Keys": {"Id": {"N": "101"}}}
        if new is not None:
            change["NewImage"] = new
        if old is not None:
            change["OldImage"] = old
        change.update(
            {
                "ApproximateCreationDateTime": 1428537600,
                "SequenceNumber": seq,
                "SizeBytes": size,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            }
        )
        return {
            "eventID": event_id,
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": change,
            "eventSourceARN": TABLE_STREAM_ARN,
        }

    return {
        "Records": [
            record(
                "c4ca4238a0b923820dcc509a6f75849b",
                "INSERT",
                "4421584500000000017450439091",
                26,
                image("New item!", a),
                None,
            ),
            record(
                "c81e728d9d4c2f636f067f89cc14862c",
                "MODIFY",
                "4421584500000000017450439092",
                59,
                image("This item has changed", b),
                image("New item!", a),
            ),
            record(
                "eccbc87e4b5ce2fe28308fd9f2a7baf3",
                "REMOVE",
                "4421584500000000017450439093",
                38,
                None,
                image("This item has changed", b),
            ),
        ]
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write sample Kinesis and DynamoDB events.")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "events")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, event in (("kinesis.json", kinesis_event(SAMPLE_TEXTS)), ("dynamodb.json", dynamodb_update_event())):
        (args.out / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()

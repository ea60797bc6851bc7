"""What botocore's client-side parameter validation costs per ``BatchWriteItem`` of 25 result items.

Runs the twin's endpoint (moto in its own process, ``--fast-moto``), and times the client's CPU
(``time.process_time``) over ``--calls`` writes of 25 items shaped like the function's results,
with ``Config(parameter_validation=True)`` and ``False`` alternately, ``--rounds`` times each.
The server's CPU is not counted: this is what the function's worker pays per write, on Lambda too.

Usage: ``python -m experiments.botocore_validation [--calls 200] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import boto3
from botocore.config import Config

from localtwin.embedded_aws import EmbeddedAWS


def _item(i: int) -> dict[str, Any]:
    return {
        "PutRequest": {
            "Item": {
                "record_id": {"S": f"shardId-000000000000:{i:020d}"},
                "label": {"S": "fresh"},
                "probability": {"N": "0.8123"},
                "model_name": {"S": "reviews"},
                "model_version": {"S": "1.0.0"},
                "sequence_number": {"S": f"{i:020d}"},
            }
        }
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with EmbeddedAWS(fast_moto=True) as aws:
        aws.create_table("results", key="record_id")
        for _ in range(args.rounds):
            for validation in (True, False):
                config = Config(retries={"mode": "standard", "max_attempts": 3}, parameter_validation=validation)
                client = boto3.client(
                    "dynamodb",
                    endpoint_url=aws.endpoint_url,
                    region_name="us-east-1",
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                    config=config,
                )
                client.batch_write_item(RequestItems={"results": [_item(i) for i in range(25)]})  # connection, warm
                started = time.process_time()
                for call in range(args.calls):
                    client.batch_write_item(RequestItems={"results": [_item(call * 25 + i) for i in range(25)]})
                per_call_ms = (time.process_time() - started) / args.calls * 1000
                print(f"parameter_validation={validation!s:5}  {per_call_ms:.2f} ms of client CPU per call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The on-failure destination: where records the mapping gives up on are described.

One message per given-up batch, in Lambda's shape (built by the engine), to the SQS queue,
SNS topic or S3 bucket the ARN names. S3 destinations also receive the invocation's
payload (unverified layout).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


class Destination:
    """Sends on-failure records to an SQS queue, SNS topic or S3 bucket given by ARN."""

    def __init__(self, arn: str, client_factory: Callable[[str], Any]) -> None:
        self.arn = arn
        parts = arn.split(":")
        self.service = parts[2]
        if self.service == "sqs":
            self.client = client_factory("sqs")
            self.target = self.client.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        elif self.service == "sns":
            self.client, self.target = client_factory("sns"), arn
        elif self.service == "s3":
            self.client, self.target = client_factory("s3"), parts[5]
        else:
            raise ValueError(f"on-failure destination {arn} is not an SQS queue, SNS topic or S3 bucket ARN")

    def send(self, record: dict[str, Any], shard_id: str, event: dict[str, Any]) -> None:
        body = json.dumps(record)
        if self.service == "sqs":
            self.client.send_message(QueueUrl=self.target, MessageBody=body)
        elif self.service == "sns":
            self.client.publish(TopicArn=self.target, Message=body)
        else:
            # S3 destinations also receive the invocation's payload (unverified layout).
            now = datetime.now(UTC)
            key = f"aws/lambda/local-esm/{shard_id}/{now:%Y/%m/%d/%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}"
            self.client.put_object(Bucket=self.target, Key=key, Body=json.dumps({**record, "payload": event}))

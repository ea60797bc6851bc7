"""Sample events in the exact shapes ``sam local generate-event`` emits.

``kinesis get-records`` and ``dynamodb update`` (aws-sam-cli's templates), with
payloads that fit the model. Used by ``make events``, the demo, the tests and the
benchmarks.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from inference.events import (
    DynamoDBChange,
    DynamoDBChangeDocument,
    DynamoDBEventName,
    DynamoDBStreamEvent,
    DynamoDBStreamRecord,
    KinesisStreamEvent,
    KinesisStreamRecord,
)

from training.train import MODEL_NAME as REFERENCE_MODEL_NAME

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
KINESIS_ARN = "arn:aws:kinesis:EXAMPLE"
TABLE_STREAM_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899"
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
    arrival: float = 1428537600.0,
    invoke_identity_arn: str = "arn:aws:iam::EXAMPLE",
    region: str = REGION,
) -> KinesisStreamRecord:
    """One record of ``sam local generate-event kinesis get-records`` with ``payload`` as data.

    The keyword arguments default to the template's values; the local event source
    mapping (:mod:`localtwin.mapping`) passes a real stream's.
    """
    raw = payload.encode() if isinstance(payload, str) else payload
    return {
        "kinesis": {
            "partitionKey": partition_key,
            "kinesisSchemaVersion": "1.0",
            "data": base64.b64encode(raw).decode(),
            "sequenceNumber": str(sequence),
            "approximateArrivalTimestamp": arrival,
        },
        "eventSource": "aws:kinesis",
        "eventID": f"{shard}:{sequence}",
        "invokeIdentityArn": invoke_identity_arn,
        "eventVersion": "1.0",
        "eventName": "aws:kinesis:record",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    }


def dynamodb_record(
    new_image: dict[str, Any] | None,
    sequence: str | None = "100",
    event_name: DynamoDBEventName = "INSERT",
    event_id: str | None = None,
    view_type: str = "NEW_AND_OLD_IMAGES",
    old_image: dict[str, Any] | None = None,
    size_bytes: int = 26,
) -> DynamoDBStreamRecord:
    """One DynamoDB Streams record (``sam local generate-event dynamodb update`` shape).

    With ``sequence=None`` the change has no ``SequenceNumber`` (which Lambda never sends).
    """
    change: DynamoDBChange = {"Keys": {"Id": {"N": "101"}}}
    if new_image is not None:
        change["NewImage"] = new_image
    if old_image is not None:
        change["OldImage"] = old_image
    change["ApproximateCreationDateTime"] = 1428537600
    if sequence is not None:
        change["SequenceNumber"] = sequence
    change.update({"SizeBytes": size_bytes, "StreamViewType": view_type})
    return {
        "eventID": event_id or f"ddb-{sequence}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": TABLE_STREAM_ARN,
    }


def kinesis_ddb_document(
    new_image: dict[str, Any] | None,
    event_name: DynamoDBEventName = "INSERT",
    old_image: dict[str, Any] | None = None,
) -> DynamoDBChangeDocument:
    """The JSON a "Kinesis Data Streams for DynamoDB" record carries (docs/aws-notes.md §1)."""
    change: DynamoDBChange = {
        "ApproximateCreationDateTime": 1700000000123456,  # microseconds
        "Keys": {"Id": {"N": "101"}},
        "SizeBytes": 42,
    }
    if new_image is not None:
        change["NewImage"] = new_image
    if old_image is not None:
        change["OldImage"] = old_image
    return {
        "awsRegion": REGION,
        "eventID": "4b25bd0c-5a4b-4b1a-9a23-7c7d0b6bd4a1",
        "eventName": event_name,
        "userIdentity": None,
        "recordFormat": "application/json",
        "tableName": "ExampleTableWithStream",
        "eventSource": "aws:dynamodb",
        "dynamodb": change,
    }


def kinesis_event(
    texts: list[str], field: str = "text", first_sequence: int = FIRST_SEQUENCE, shard: str = "shardId-000000000000"
) -> KinesisStreamEvent:
    """A Kinesis batch whose records carry ``{field: text}`` JSON payloads."""
    return {
        "Records": [
            kinesis_record(json.dumps({field: t}), first_sequence + i, shard=shard) for i, t in enumerate(texts)
        ]
    }


def dynamodb_update_event(texts: list[str] | None = None, field: str = "text") -> DynamoDBStreamEvent:
    """``sam local generate-event dynamodb update``: INSERT, MODIFY, REMOVE of item 101,
    with the model's text field added to each image."""
    a, b = (texts or SAMPLE_TEXTS)[:2]

    def image(message: str, text: str) -> dict[str, Any]:
        return {"Message": {"S": message}, "Id": {"N": "101"}, field: {"S": text}}

    return {
        "Records": [
            dynamodb_record(
                image("New item!", a), "4421584500000000017450439091", "INSERT", "c4ca4238a0b923820dcc509a6f75849b"
            ),
            dynamodb_record(
                image("This item has changed", b),
                "4421584500000000017450439092",
                "MODIFY",
                "c81e728d9d4c2f636f067f89cc14862c",
                old_image=image("New item!", a),
                size_bytes=59,
            ),
            dynamodb_record(
                None,
                "4421584500000000017450439093",
                "REMOVE",
                "eccbc87e4b5ce2fe28308fd9f2a7baf3",
                old_image=image("This item has changed", b),
                size_bytes=38,
            ),
        ]
    }


# --- HTTP: API Gateway REST (aws-proxy), HTTP API (http-api-proxy), function URLs -------

#: The path the sample HTTP events name: the reference model's predict route.
PREDICT_PATH = f"models/{REFERENCE_MODEL_NAME}/predict"
DNS_SUFFIX = f"{REGION}.amazonaws.com"
FUNCTION_URL_ID = "abcdefghijklmnopqrstuvwxyz0123456"

_REST_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8",
    "Accept-Encoding": "gzip, deflate, sdch",
    "Accept-Language": "en-US,en;q=0.8",
    "Cache-Control": "max-age=0",
    "CloudFront-Forwarded-Proto": "https",
    "CloudFront-Is-Desktop-Viewer": "true",
    "CloudFront-Is-Mobile-Viewer": "false",
    "CloudFront-Is-SmartTV-Viewer": "false",
    "CloudFront-Is-Tablet-Viewer": "false",
    "CloudFront-Viewer-Country": "US",
    "Host": f"1234567890.execute-api.{DNS_SUFFIX}",
    "Upgrade-Insecure-Requests": "1",
    "User-Agent": "Custom User Agent String",
    "Via": "1.1 08f323deadbeefa7af34d5feb414ce27.cloudfront.net (CloudFront)",
    "X-Amz-Cf-Id": "cDehVQoZnx43VYQb9j2-nvCh-9z396Uhbp027Y2JvkCPNLmGJHqlaA==",
    "X-Forwarded-For": "127.0.0.1, 127.0.0.2",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https",
}


def predict_body(texts: list[str] | None = None, field: str = "text") -> str:
    """A predict request body: one ``{field: text}`` instance, or a list of them for 2+ texts."""
    texts = texts or SAMPLE_TEXTS[:1]
    instances = [{field: text} for text in texts]
    return json.dumps(instances[0] if len(instances) == 1 else instances)


def _b64(body: str | bytes) -> str:
    return base64.b64encode(body.encode() if isinstance(body, str) else body).decode()


def apigateway_proxy_event(
    body: str | bytes | None = None,
    method: str = "POST",
    path: str = PREDICT_PATH,
    stage: str = "prod",
    resource: str = "/{proxy+}",
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``sam local generate-event apigateway aws-proxy --method M --path P --body B``:
    a REST API proxy event (payload 1.0); the body is base64, as the template has it.

    ``path`` is given without its leading ``/``, as to ``sam``. The default body is one
    instance for the reference model (:func:`predict_body`).
    """
    body = predict_body() if body is None else body
    query = {"foo": "bar"} if query is None else query
    headers = dict(_REST_HEADERS)
    multi = {k: [v] for k, v in headers.items()}
    multi["Host"] = [f"0123456789.execute-api.{DNS_SUFFIX}"]  # sic: the template's two hosts differ
    return {
        "body": _b64(body),
        "resource": resource,
        "path": f"/{path}",
        "httpMethod": method,
        "isBase64Encoded": True,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {"foo": ["bar"]},
        "pathParameters": {"proxy": f"/{path}"},
        "stageVariables": {"baz": "qux"},
        "headers": headers,
        "multiValueHeaders": multi,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "resourceId": "123456",
            "stage": stage,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "09/Apr/2015:12:34:56 +0000",
            "requestTimeEpoch": 1428582896000,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "accessKey": None,
                "sourceIp": "127.0.0.1",
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": "Custom User Agent String",
                "user": None,
            },
            "path": f"/{stage}/{path}",
            "resourcePath": resource,
            "httpMethod": method,
            "apiId": "1234567890",
            "protocol": "HTTP/1.1",
        },
    }


def _v2_event(
    body: str | bytes, method: str, raw_path: str, stage: str, domain: str, authorizer: dict[str, Any]
) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
        "cookies": ["cookie1", "cookie2"],
        "headers": {"Header1": "value1", "Header2": "value1,value2"},
        "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "api-id",
            "authentication": {
                "clientCert": {
                    "clientCertPem": "CERT_CONTENT",
                    "subjectDN": "www.example.com",
                    "issuerDN": "Example issuer",
                    "serialNumber": "a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1:a1",
                    "validity": {"notBefore": "May 28 12:30:02 2019 GMT", "notAfter": "Aug  5 09:36:04 2021 GMT"},
                }
            },
            "authorizer": authorizer,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.168.0.1/32",
                "userAgent": "agent",
            },
            "requestId": "id",
            "routeKey": "$default",
            "stage": stage,
            "time": "12/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390,
        },
        "body": _b64(body),
        "pathParameters": {"parameter1": "value1"},
        "isBase64Encoded": True,
        "stageVariables": {"stageVariable1": "value1", "stageVariable2": "value2"},
    }


def http_api_proxy_event(
    body: str | bytes | None = None, method: str = "POST", path: str = PREDICT_PATH, stage: str = "$default"
) -> dict[str, Any]:
    """``sam local generate-event apigateway http-api-proxy --method M --path P --body B``:
    an HTTP API event (payload 2.0); the body is base64, as the template has it."""
    body = predict_body() if body is None else body
    jwt = {"jwt": {"claims": {"claim1": "value1", "claim2": "value2"}, "scopes": ["scope1", "scope2"]}}
    return _v2_event(body, method, f"/{path}", stage, f"id.execute-api.{DNS_SUFFIX}", jwt)


def function_url_event(
    body: str | bytes | None = None, method: str = "POST", path: str = PREDICT_PATH, base64_body: bool = False
) -> dict[str, Any]:
    """A Lambda function URL event with ``AWS_IAM`` auth: the payload 2.0 shape of the
    Lambda developer guide ("Invoking Lambda function URLs"), which ``sam`` has no
    template for. Unlike the API Gateway templates, a text body arrives as it was sent."""
    body = predict_body() if body is None else body
    event = _v2_event(
        body,
        method,
        f"/{path}",
        "$default",
        f"{FUNCTION_URL_ID}.lambda-url.{REGION}.on.aws",
        {
            "iam": {
                "accessKey": "AKIAIOSFODNN7EXAMPLE",
                "accountId": "111122223333",
                "callerId": "AIDACKCEVSQ6C2EXAMPLE",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": "arn:aws:iam::111122223333:user/example-user",
                "userId": "AIDACKCEVSQ6C2EXAMPLE",
            }
        },
    )
    context = event["requestContext"]
    context.update({"apiId": FUNCTION_URL_ID, "authentication": None})
    context["http"]["sourceIp"] = "123.123.123.123"
    event.update(
        {
            "headers": {"content-type": "application/json", "host": context["domainName"]},
            "pathParameters": None,
            "stageVariables": None,
            "isBase64Encoded": base64_body,
            "body": _b64(body) if base64_body else (body.decode() if isinstance(body, bytes) else body),
        }
    )
    return event


#: ``make events`` writes these beside ``kinesis.json`` and ``dynamodb.json``.
HTTP_EVENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "apigateway.json": apigateway_proxy_event,
    "http-api.json": http_api_proxy_event,
    "function-url.json": function_url_event,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write sample Kinesis, DynamoDB and HTTP (predict) events.")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "events")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    events: dict[str, Mapping[str, object]] = {
        "kinesis.json": kinesis_event(SAMPLE_TEXTS),
        "dynamodb.json": dynamodb_update_event(),
    }
    events.update({name: make() for name, make in HTTP_EVENTS.items()})
    for name, event in events.items():
        (args.out / name).write_text(json.dumps(event, indent=2) + "\n")
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()

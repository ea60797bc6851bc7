"""The seeded event generator: :func:`generate` draws case ``number`` from a
:class:`random.Random`, in one of :data:`CATEGORIES`, and labels every record of a
generated batch with what it is (:mod:`testing.accounting`'s ``GOOD``, ``RAISES``,
``POISON`` or ``SKIP``), from what it built; every payload text carries a unique canary (:data:`CANARY`).
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from inference.events import DynamoDBEventName

from testing.accounting import GOOD, POISON, RAISES, SKIP
from testing.events import FIRST_SEQUENCE, dynamodb_record, kinesis_ddb_document, kinesis_record
from testing.fuzz.typed_model import TYPED_ACCEPTS_MISSING

#: Every canary starts with this; log lines are searched for it, case-insensitively.
CANARY = "zqcanary"

#: Category -> weight (share of the cases).
CATEGORIES = {
    "kinesis-valid": 10,
    "dynamodb-valid": 9,
    "event-shapes": 6,
    "record-shapes": 14,
    "huge": 3,
    "deep": 7,
    "encoding": 9,
    "non-finite": 10,
    "dynamodb-types": 10,
    "duplicates": 8,
    "mixed": 8,
    "model-raises": 6,
    "typed": 9,
}

#: Lambda's limits: 6 MB per synchronous event; 1 MB per Kinesis record; 400 KB per item.
MAX_EVENT_BYTES = 6_000_000
MAX_KINESIS_DATA = 1_048_576
MAX_DYNAMODB_STRING = 400_000
#: Python's json gives up between 1,000 and 1,500 levels: Lambda's runtime parses the
#: event with it, so no event it hands over is deeper. Generated events stay below this.
MAX_EVENT_DEPTH = 1_400
#: Deeper than this, json.loads always raises RecursionError on a payload.
UNREADABLE_DEPTH = 2_000

_WORDS = [
    "the",
    "film",
    "movie",
    "story",
    "acting",
    "plot",
    "really",
    "quite",
    "this",
    "is",
    "and",
    "its",
    "wonderful",
    "moving",
    "brilliant",
    "funny",
    "beautiful",
    "warm",
    "delightful",
    "tedious",
    "boring",
    "dull",
    "awful",
    "overlong",
    "clumsy",
    "lifeless",
    "dreadful",
]
BOOM = "BOOM"


@dataclass
class Case:
    """One generated event and what must become of it."""

    number: int
    category: str
    event: Any
    #: "text", "tabular", "typed" (:mod:`testing.fuzz.typed_model`), or "boom" (text model that raises on BOOM)
    model: str = "text"
    #: What each record is, as the generator built it (:mod:`testing.accounting`'s labels);
    #: the oracle quarantines a record of another source or without a sequence number
    #: whatever its label.
    contents: list[str] = field(default_factory=list)
    #: Indices the results sink fails on (None: the response is the sink).
    sink_fails: frozenset[int] | None = None
    #: Indices the quarantine destination fails on (None: the default, log lines).
    quarantine_fails: frozenset[int] | None = None
    #: The event must survive a round trip through json (it is nested near the limit).
    check_json: bool = False


class _Gen:
    """Builds the records of one case; every payload text carries a unique canary."""

    def __init__(self, rng: random.Random, number: int, model: str) -> None:
        self.rng = rng
        self.number = number
        self.model = model
        self.count = 0

    # - plain values

    def canary(self) -> str:
        self.count += 1
        return f"{CANARY}{self.number}r{self.count}"

    def seq(self) -> str:
        return str(FIRST_SEQUENCE + self.number * 100_000 + self.count * 7 + self.rng.randrange(7))

    def text(self) -> str:
        rng = self.rng
        chosen = rng.choices(_WORDS, k=rng.randint(0, 12))
        chosen.insert(rng.randint(0, len(chosen)), self.canary())
        extra = rng.choice(["", "", "", " é ✓ 🎬", " \u0000 tab\there", " \ud800 lone surrogate", "\n\r"])
        return " ".join(chosen) + extra

    def features(self, dynamodb: bool = False) -> list[float]:
        """Finite rows; DynamoDB numbers stay within its range (1e-130 to 9.99e125)."""
        rng = self.rng
        extremes = [1e125, -1e-130] if dynamodb else [1.7e308, -1.7e308, 5e-324]
        return [rng.choice([rng.uniform(-3, 3), rng.uniform(-1e6, 1e6), 0.0, -0.0, *extremes]) for _ in "abc"]

    def typed_values(self) -> dict[str, Any]:
        """A typed model's good values (:mod:`testing.fuzz.typed_model`): any string (a colour it
        knows, or one it ignores), a finite number, a bool; ``None`` (null) or absent where allowed."""
        rng = self.rng
        values: dict[str, Any] = {
            "color": rng.choice(["red", "green", "blue", self.canary(), "", "é ✓ 🎬", None]),
            "size": rng.choice([rng.uniform(-3, 3), 0, -2, 1e6, None]),
            "member": rng.random() < 0.5,
        }
        for name in TYPED_ACCEPTS_MISSING:
            if rng.random() < 0.1:
                del values[name]
        return values

    def good_doc(self) -> dict[str, Any]:
        doc: dict[str, Any]
        if self.model == "typed":
            doc = self.typed_values()
        else:
            doc = dict(zip("abc", self.features())) if self.model == "tabular" else {"text": self.text()}
        for _ in range(self.rng.choice([0, 0, 1, 3])):
            doc[self.rng.choice(["note", "user", "tags", "n", "text2"])] = self.rng.choice(
                [self.canary(), [1, self.canary()], {"k": self.canary()}, None, 3.5]
            )
        return doc

    def good_image(self) -> dict[str, Any]:
        rng = self.rng
        if self.model == "tabular":
            image: dict[str, Any] = {k: {"N": repr(v)} for k, v in zip("abc", self.features(dynamodb=True))}
        elif self.model == "typed":
            image = {name: _typed_attribute(value) for name, value in self.typed_values().items()}
        else:
            image = {"text": {"S": self.text()}}
        image["Id"] = {"N": str(rng.randint(0, 10**6))}
        # Attributes the model does not read, valid or not: they must not matter.
        for _ in range(rng.choice([0, 1, 2, 4])):
            image[rng.choice(["Message", "photo", "tags", "meta", "flags", "odd"])] = rng.choice(
                [
                    {"S": self.canary()},
                    {"B": base64.b64encode(self.canary().encode()).decode()},
                    {"BS": ["aGVsbG8=", "d29ybGQ="]},
                    {"SS": [self.canary(), "x"]},
                    {"NS": ["1", "2.5"]},
                    {"L": [{"S": self.canary()}, {"N": "1"}, {"NULL": True}]},
                    {"M": {"k": {"S": self.canary()}, "b": {"BOOL": False}}},
                    {"BOOL": True},
                    {"NULL": True},
                    {"XX": self.canary()},
                    {"N": "not a number"},
                    {},
                    "plain",
                ]
            )
        return image

    # - records

    # The fuzzer bends records into shapes the wire TypedDicts forbid, so it holds them as plain dicts.

    def kinesis(self, payload: bytes | str) -> dict[str, Any]:
        return cast(dict[str, Any], kinesis_record(payload, self.seq()))

    def kinesis_doc(self, doc: Any) -> dict[str, Any]:
        return self.kinesis(json.dumps(doc))

    def ddb(
        self,
        image: Any = None,
        event_name: DynamoDBEventName = "INSERT",
        view: str = "NEW_AND_OLD_IMAGES",
        old_image: Any = None,
    ) -> dict[str, Any]:
        record = dynamodb_record(image, self.seq(), event_name, f"{self.rng.getrandbits(128):032x}", view, old_image)
        return cast(dict[str, Any], record)

    def routed(self, image: Any, event_name: DynamoDBEventName = "INSERT") -> dict[str, Any]:
        """A Kinesis record holding a DynamoDB change."""
        return self.kinesis_doc(kinesis_ddb_document(image, event_name))

    def good(self, kind: str) -> tuple[Any, str]:
        if kind == "kinesis":
            return self.kinesis_doc(self.good_doc()), GOOD
        name: DynamoDBEventName = self.rng.choice(["INSERT", "MODIFY", "MODIFY"])
        return self.ddb(self.good_image(), name, old_image=self.good_image() if name == "MODIFY" else None), GOOD

    def skip(self, kind: str) -> tuple[Any, str]:
        rng = self.rng
        if kind == "kinesis":
            if rng.random() < 0.5:
                return self.routed(self.good_image(), "REMOVE"), SKIP
            return self.routed(None, rng.choice(["INSERT", "MODIFY"])), SKIP
        choice = rng.randrange(3)
        if choice == 0:
            return self.ddb(None, "REMOVE", old_image=self.good_image()), SKIP
        if choice == 1:
            return self.ddb(None, rng.choice(["INSERT", "MODIFY"]), view="KEYS_ONLY"), SKIP
        return self.ddb(None, "MODIFY", view="OLD_IMAGE", old_image=self.good_image()), SKIP


def _fill(gen: _Gen, kind: str, n: int) -> tuple[list[Any], list[str]]:
    """``n`` well-formed records (mostly scored, some skipped)."""
    pairs = [gen.good(kind) if gen.rng.random() < 0.85 else gen.skip(kind) for _ in range(n)]
    return [r for r, _ in pairs], [c for _, c in pairs]


def _insert(gen: _Gen, records: list[Any], contents: list[str], extra: list[tuple[Any, str]]) -> None:
    for record, content in extra:
        at = gen.rng.randint(0, len(records))
        records.insert(at, record)
        contents.insert(at, content)


def _batch_size(rng: random.Random) -> int:
    return rng.choice([1, 1, 2, 3, 5, 8, 10, 12, 20, 40, 100])


def _gen_valid(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    return _fill(gen, kind, _batch_size(gen.rng))


def _gen_event_shapes(gen: _Gen) -> Any:
    """Events that are no stream batch (rejected), and the empty batch."""
    rng = gen.rng
    record, _ = gen.good("kinesis")
    garbage = [None, gen.canary(), [gen.canary()], 7, {}, {"eventSource": "aws:sqs", "body": gen.canary()}]
    return rng.choice(
        [
            None,
            5,
            1.5,
            gen.canary(),
            [record],
            [],
            {},
            {"records": [record]},
            {"Records": None},
            {"Records": gen.canary()},
            {"Records": {"0": record}},
            {"Records": 3},
            {"Records": []},
            {"Records": []},
            {"Records": rng.sample(garbage, rng.randint(1, len(garbage)))},
            {"Records": [{**record, "eventSource": rng.choice(["aws:sqs", "aws:sns", None, "AWS:KINESIS", 5])}]},
            {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": gen.canary()}}]},
            {"requestContext": {"weird": gen.canary()}, "body": gen.canary()},
        ]
    )


def _mutate(gen: _Gen, record: dict[str, Any], kind: str) -> tuple[Any, str | None]:
    """Break one thing in a well-formed record; the content label it then has (None: it
    stays as it was)."""
    rng = gen.rng
    body_key = "kinesis" if kind == "kinesis" else "dynamodb"
    seq_key = "sequenceNumber" if kind == "kinesis" else "SequenceNumber"
    body = record[body_key]
    m = rng.randrange(16)
    if m == 0:
        return rng.choice([None, gen.canary(), [gen.canary()], 42, True, {}, {"eventSource": f"aws:{kind}"}]), POISON
    if m == 1:
        del record[body_key]
        return record, POISON
    if m == 2:
        record[body_key] = rng.choice([gen.canary(), [], None, 5])
        return record, POISON
    if m == 3:
        del body[seq_key]
        return record, POISON
    if m == 4:
        body[seq_key] = rng.choice(["", 123, None, [gen.seq()], {"n": 1}, 1.5])
        return record, POISON
    if m == 5:
        del record["eventSource"]
        return record, POISON
    if m == 6:
        record["eventSource"] = rng.choice(
            ["aws:sqs", "AWS:KINESIS", "aws:dynamodb " if kind == "dynamodb" else "", 5, None]
        )
        return record, POISON
    if m == 7:
        if rng.random() < 0.5:
            del record["eventID"]
        else:
            record["eventID"] = rng.choice(["", 5, None, ["x"]])
        return record, None  # identified by its sequence number instead
    if m == 8:
        for key in rng.sample(["eventSourceARN", "eventName", "awsRegion", "eventVersion"], rng.randint(1, 3)):
            if key == "eventName" and kind == "dynamodb":
                record[key] = rng.choice(["INSERT", "MODIFY", None, 5, "remove"])  # not REMOVE: read the image
            else:
                record[key] = rng.choice([None, 5, [], {"x": 1}])
        return record, None
    if m == 9:
        record.clear()  # an object with no keys
        return record, POISON
    if kind == "kinesis":
        if m == 10:
            del body["data"]
            return record, POISON
        if m == 11:
            body["data"] = rng.choice([None, 123, [], {"b64": "e30="}, True])
            return record, POISON
        if m == 12:
            doc = rng.choice([[1, 2], "text", 3, None, True, {"txt": gen.canary()}, {"text": 5}, {"text": None}])
            body["data"] = base64.b64encode(json.dumps(doc).encode()).decode()
            return record, POISON
        if m == 13:
            body["data"] = base64.b64encode(b"").decode()
            return record, POISON
        return record, None
    if m == 10:
        del body["NewImage"]
        return record, SKIP
    if m == 11:
        body["NewImage"] = None
        return record, SKIP
    if m == 12:
        body["NewImage"] = rng.choice([gen.canary(), [], 5, True])
        return record, POISON
    if m == 13:
        record["eventName"] = "REMOVE"
        return record, SKIP
    if m == 14:
        body["NewImage"] = {}
        return record, POISON
    return record, None


def _gen_record_shapes(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    rng = gen.rng
    records, contents = _fill(gen, kind, _batch_size(rng))
    targets = rng.sample(range(len(records)), rng.randint(1, len(records)))
    if rng.random() < 0.4:
        targets.append(0)  # garbage first: the batch's kind comes from its first stream record
    for i in set(targets):
        if contents[i] != GOOD:
            continue
        records[i], content = _mutate(gen, records[i], kind)
        contents[i] = content or contents[i]
    return records, contents


def _gen_huge(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    rng = gen.rng
    records, contents = _fill(gen, kind, rng.choice([0, 1, 3]))
    budget = MAX_EVENT_BYTES - 200_000
    extra: list[tuple[Any, str]] = []
    while budget > 0 and len(extra) < rng.randint(1, 4):
        if kind == "kinesis":
            size = rng.choice([rng.randint(100_000, MAX_KINESIS_DATA - 100), MAX_KINESIS_DATA - 100])
            shape = rng.randrange(5)
            if shape == 0 and gen.model == "text":  # a long text of words (slow to score: kept shorter)
                words = " ".join(rng.choices(_WORDS, k=rng.randint(2_000, 15_000)))
                payload, content = json.dumps({"text": gen.canary() + " " + words}).encode(), GOOD
            elif shape == 1 and gen.model == "text":  # one huge token
                payload, content = json.dumps({"text": gen.canary() + "x" * (size - 60)}).encode(), GOOD
            elif shape == 2:  # a huge field the model does not read
                doc = gen.good_doc()
                doc["blob"] = gen.canary() + "y" * (size - 200)
                payload, content = json.dumps(doc).encode(), GOOD
            elif shape == 3:  # huge and invalid UTF-8
                payload, content = gen.canary().encode() + rng.randbytes(size), POISON
            else:  # huge and no JSON object
                payload, content = json.dumps([gen.canary()] * (size // 30)).encode(), POISON
            payload = payload[:MAX_KINESIS_DATA] if content == POISON else payload
            record = gen.kinesis(payload)
            cost = len(record["kinesis"]["data"])
        else:
            size = rng.randint(50_000, MAX_DYNAMODB_STRING - 100)
            image = gen.good_image()
            if gen.model == "text" and rng.random() < 0.5:
                image["text"] = {"S": gen.canary() + "z" * size}
            else:
                image["big"] = {"S": gen.canary() + "w" * size}
            record, content = gen.ddb(image), GOOD
            cost = size
        budget -= cost
        if budget > 0:
            extra.append((record, content))
    if rng.random() < 0.2:  # many small records instead
        more = _fill(gen, kind, rng.randint(300, 1500))
        extra += list(zip(*more))
    _insert(gen, records, contents, extra)
    return records, contents


def _nested_list(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _nested_attr(depth: int, leaf: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    value = leaf
    for _ in range(depth):
        value = {"M": {"k": value}} if rng.random() < 0.5 else {"L": [value]}
    return value


def _gen_deep(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    rng = gen.rng
    records, contents = _fill(gen, kind, rng.choice([0, 1, 4]))
    extra = []
    for _ in range(rng.randint(1, 3)):
        shape = rng.randrange(6)
        deep = rng.randint(UNREADABLE_DEPTH, 100_000)
        shallow = rng.randint(1, 100)
        # The event's own nesting: event, Records, record, body, NewImage, attribute.
        room = (MAX_EVENT_DEPTH - 8) // 2
        if kind == "kinesis":
            if shape == 0:  # a deep JSON array as the payload
                record, content = gen.kinesis(f'["{gen.canary()}", ' + "[" * deep + "]" * deep + "]"), POISON
            elif shape == 1:  # a good payload with a field nested too deep to read
                text = json.dumps({"text": gen.canary()})[:-1] + ', "x": ' + "[" * deep + "]" * deep + "}"
                record, content = gen.kinesis(text), POISON
            elif shape == 2:  # a good payload with a field nested deep but readable
                doc = gen.good_doc()
                doc["x"] = _nested_list(shallow, gen.canary())
                record, content = gen.kinesis_doc(doc), GOOD
            elif shape == 3:  # the record itself nested near the event parser's limit
                record, content = gen.good(kind)
                record["kinesis"]["extra"] = _nested_list(rng.randint(room, 2 * room), gen.canary())
            elif shape == 4:  # a garbage record that is nothing but nesting
                record, content = _nested_list(rng.randint(room, 2 * room + 4), gen.canary()), POISON
            else:  # a DynamoDB change through Kinesis whose image is nested too deep to read
                levels = deep // 2
                attr = '{"L": [' * levels + json.dumps({"S": gen.canary()}) + "]}" * levels
                change = json.dumps(kinesis_ddb_document({"text": "DEEP"}))
                record, content = gen.kinesis(change.replace('"DEEP"', attr)), POISON
        else:
            image = gen.good_image()
            if shape in (0, 1, 2):  # an attribute the model does not read, nested near the limit
                image["deep"] = _nested_attr(rng.randint(room // 2, room), {"S": gen.canary()}, rng)
                record, content = gen.ddb(image), GOOD
            elif shape == 3:  # the model's own attribute nested (too deep for the deserializer, or not)
                name = "text" if gen.model == "text" else "a"
                image[name] = _nested_attr(rng.choice([shallow, room]), {"S": gen.canary()}, rng)
                record, content = gen.ddb(image), POISON
            elif shape == 4:
                record, content = _nested_list(rng.randint(room, 2 * room + 4), gen.canary()), POISON
            else:
                record, content = gen.good(kind)
                record["dynamodb"]["OldImage"] = {"deep": _nested_attr(room, {"S": gen.canary()}, rng)}
        extra.append((record, content))
    _insert(gen, records, contents, extra)
    return records, contents


def _gen_encoding(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    rng = gen.rng
    records, contents = _fill(gen, kind, rng.choice([0, 1, 3, 6]))
    extra = []
    for _ in range(rng.randint(1, 4)):
        if kind == "dynamodb":  # strings are already text in a DynamoDB event: only odd ones
            image = gen.good_image()
            if gen.model == "text":
                image["text"] = {
                    "S": rng.choice(["\ud800\udfff\ud83c", "\u0000", "", "\ufeff", "é" * 3]) + gen.canary()
                }
            extra.append((gen.ddb(image), GOOD))
            continue
        canary = gen.canary().encode()
        good = json.dumps({"text": canary.decode()} if gen.model == "text" else gen.good_doc()).encode()
        shape = rng.randrange(10)
        if shape == 0:
            payload = (
                b'{"text": "'
                + canary
                + rng.choice([b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"])
                + b'"}'
            )
            extra.append((gen.kinesis(payload), POISON))
        elif shape == 1:
            extra.append((gen.kinesis(good + rng.choice([b"\x80", b"\xf0\x9f\x8e"])), POISON))
        elif shape == 2:
            extra.append((gen.kinesis(canary + rng.randbytes(rng.randint(1, 200)) + b"\xff"), POISON))
        elif shape == 3:
            extra.append((gen.kinesis(b"\xef\xbb\xbf" + good), POISON))  # a UTF-8 byte order mark: not JSON
        elif shape == 4:
            text = rng.choice(["\\ud800", "\\u0000", "\\udfff\\ud800", "\\u00e9"])
            extra.append(
                (gen.kinesis(b'{"text": "' + canary + text.encode() + b'"}'), GOOD if gen.model == "text" else POISON)
            )
        else:
            record = gen.kinesis(good)
            data = record["kinesis"]["data"]
            bad = rng.choice(
                [
                    data + "!",
                    "!" + data,
                    data.rstrip("=") + "A" if data.endswith("=") else data[:-1],
                    data[: len(data) // 2] + "\n" + data[len(data) // 2 :],
                    data.replace("+", "-").replace("/", "_") + "-_",
                    data[:2] + "=" + data[2:],  # padding inside the data
                    "é" + data,
                    "\ud800" + data,
                    data[: len(data) // 2] + " " + data[len(data) // 2 :],
                ]
            )
            record["kinesis"]["data"] = bad
            extra.append((record, POISON))
    _insert(gen, records, contents, extra)
    return records, contents


_NON_FINITE_TOKENS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1E999", "1" + "0" * 400, "-" + "9" * 350]
_NON_FINITE_N = ["NaN", "Infinity", "-Infinity", "-NaN", "sNaN", "1e400", "abc", "", "1.5.5"]


def _gen_non_finite(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    rng = gen.rng
    records, contents = _fill(gen, kind, rng.choice([0, 1, 3, 8]))
    extra = []
    for _ in range(rng.randint(1, 5)):
        values = [repr(v) for v in gen.features()]
        bad = rng.randrange(3)
        shape = rng.randrange(4)
        if kind == "kinesis":
            if shape < 3:
                values[bad] = rng.choice(_NON_FINITE_TOKENS)
                content = POISON
            else:
                values[bad] = rng.choice(["1e-400", "1.6e308", "-0", "0.0", "12345678901234567890"])
                content = GOOD
            text = "{" + ", ".join(f'"{k}": {v}' for k, v in zip("abc", values)) + f', "note": "{gen.canary()}"' + "}"
            if rng.random() < 0.1:
                text = '{"a": 1, "b": 2, "c": ' + "9" * 5000 + "}"  # beyond the int digits limit
                content = POISON
            extra.append((gen.kinesis(text), content))
        else:
            image = gen.good_image()
            if shape < 3:
                image["abc"[bad]] = rng.choice(
                    [{"N": rng.choice(_NON_FINITE_N)}, {"S": "1.5"}, {"BOOL": True}, {"NULL": True}, {"L": []}]
                )
                content = POISON
            else:
                image["abc"[bad]] = {
                    "N": rng.choice(["1e-130", "9.9999e125", "-0", "0", "12345678901234567890123456789"])
                }
                content = GOOD
            extra.append((gen.ddb(image), content))
    _insert(gen, records, contents, extra)
    return records, contents


def _wrong_text_attr(gen: _Gen) -> dict[str, Any] | Any:
    rng = gen.rng
    return rng.choice(
        [
            {"N": "101"},
            {"N": "not a number"},
            {"L": [{"S": gen.canary()}]},
            {"M": {"text": {"S": gen.canary()}}},
            {"BOOL": True},
            {"NULL": True},
            {"SS": [gen.canary()]},
            {"B": base64.b64encode(gen.canary().encode()).decode()},
            {"XX": gen.canary()},
            {"S": 5},
            {"S": None},
            {"S": [gen.canary()]},
            {"M": gen.canary()},
            {"L": 5},
            {},
            gen.canary(),
            None,
            [gen.canary()],
        ]
    )


def _gen_dynamodb_types(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    rng = gen.rng
    records, contents = _fill(gen, kind, rng.choice([0, 1, 3, 8]))
    extra = []
    for _ in range(rng.randint(1, 5)):
        image: Any = gen.good_image()
        if rng.random() < 0.7:
            if gen.model == "text":
                image["text"] = _wrong_text_attr(gen)
            else:
                image[rng.choice("abc")] = rng.choice([{"S": "1"}, {"L": [{"N": "1"}]}, {"XX": "1"}, None, {}])
            content = POISON
        else:
            del image["text" if gen.model == "text" else rng.choice("abc")]
            content = POISON
        if rng.random() < 0.2:
            image, content = rng.choice([[gen.canary()], gen.canary(), 5]), POISON  # NewImage not an object
        extra.append((gen.ddb(image) if kind == "dynamodb" else gen.routed(image), content))
    _insert(gen, records, contents, extra)
    return records, contents


def _gen_duplicates(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    rng = gen.rng
    records, contents = _fill(gen, kind, rng.randint(2, 15))
    seq_key = ("kinesis", "sequenceNumber") if kind == "kinesis" else ("dynamodb", "SequenceNumber")
    for _ in range(rng.randint(1, len(records))):
        i, j = rng.randrange(len(records)), rng.randrange(len(records))
        what = rng.randrange(3)
        if what in (0, 2):
            records[j][seq_key[0]][seq_key[1]] = records[i][seq_key[0]][seq_key[1]]
        if what in (1, 2):
            records[j]["eventID"] = records[i]["eventID"]
    if rng.random() < 0.3:  # the very same record twice
        i = rng.randrange(len(records))
        records.insert(i + 1, json.loads(json.dumps(records[i])))
        contents.insert(i + 1, contents[i])
    return records, contents


def _gen_mixed(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    rng = gen.rng
    records, contents = _fill(gen, kind, rng.randint(1, 10))
    other = "dynamodb" if kind == "kinesis" else "kinesis"
    extra = []
    for _ in range(rng.randint(1, 6)):
        pick = rng.randrange(4)
        if pick == 0:
            extra.append(gen.good(other))
        elif pick == 1:
            extra.append(gen.skip(kind))
        elif pick == 2:
            extra.append(gen.skip(other))
        else:
            extra.append((rng.choice([None, {"eventSource": "aws:sqs", "body": gen.canary()}, gen.canary()]), POISON))
    _insert(gen, records, contents, extra)
    return records, contents


def _gen_model_raises(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    rng = gen.rng
    records, contents = _fill(gen, kind, rng.choice([0, 0, 1, 3, 9]))
    text = f"{BOOM} {gen.text()}"
    if kind == "kinesis":
        record = gen.kinesis_doc({"text": text})
    else:
        image = gen.good_image()
        image["text"] = {"S": text}
        record = gen.ddb(image)
    _insert(gen, records, contents, [(record, RAISES)])  # one per batch: two or more would fail it
    return records, contents


def _typed_attribute(value: Any) -> dict[str, Any]:
    """``value`` as a DynamoDB attribute: S, N, BOOL or NULL."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    return {"S": value} if isinstance(value, str) else {"N": repr(value)}


#: Per feature of the typed model, values of the wrong type (a JSON value, a DynamoDB attribute):
#: every one makes the record poison.
_WRONG_TYPED: dict[str, tuple[list[Any], list[dict[str, Any]]]] = {
    "color": (
        [5, 1.5, True, ["red"], {"c": "red"}],
        [{"N": "5"}, {"BOOL": True}, {"L": [{"S": "red"}]}, {"SS": ["a"]}],
    ),
    "size": (["1.5", True, False, [1], {"n": 1}], [{"S": "1.5"}, {"BOOL": False}, {"N": "NaN"}, {"N": "x"}]),
    "member": (["true", 1, 0, None, "yes"], [{"N": "1"}, {"S": "true"}, {"NULL": True}, {"L": []}]),
}


def _gen_typed(gen: _Gen, kind: str) -> tuple[list[Any], list[str]]:
    """Good typed records (strings, bools, nulls and absent fields where the model takes them), and
    poison ones: a value of the wrong type, a non-finite number, ``member`` null or absent."""
    rng = gen.rng
    records, contents = _fill(gen, kind, rng.choice([0, 1, 3, 8, 20]))
    extra = []
    for _ in range(rng.randint(1, 5)):
        values = gen.typed_values()
        name = rng.choice(list(_WRONG_TYPED))
        as_json, as_attribute = _WRONG_TYPED[name]
        if kind == "kinesis":
            if rng.random() < 0.2:
                values.pop("member")  # absent, where the model does not take a missing value
            else:
                values[name] = rng.choice(as_json)
            text = json.dumps({**values, "note": gen.canary()})
            if rng.random() < 0.15:
                text = text[:-1] + ', "size": ' + rng.choice(["NaN", "Infinity", "1e400"]) + "}"  # last key wins
            extra.append((gen.kinesis(text), POISON))
        else:
            image = {n: _typed_attribute(v) for n, v in values.items()}
            if rng.random() < 0.2:
                image.pop("member")
            else:
                image[name] = rng.choice(as_attribute)
            extra.append((gen.ddb(image) if kind == "dynamodb" else gen.routed(image), POISON))
    _insert(gen, records, contents, extra)
    return records, contents


_GENERATORS: dict[str, Callable[[_Gen, str], tuple[list[Any], list[str]]]] = {
    "kinesis-valid": _gen_valid,
    "dynamodb-valid": _gen_valid,
    "record-shapes": _gen_record_shapes,
    "huge": _gen_huge,
    "deep": _gen_deep,
    "encoding": _gen_encoding,
    "non-finite": _gen_non_finite,
    "dynamodb-types": _gen_dynamodb_types,
    "duplicates": _gen_duplicates,
    "mixed": _gen_mixed,
    "model-raises": _gen_model_raises,
    "typed": _gen_typed,
}


def generate(rng: random.Random, number: int) -> Case:
    """Case ``number``: its category, its event, the labels of its records, and which
    items its sinks fail on."""
    category = rng.choices(list(CATEGORIES), weights=list(CATEGORIES.values()))[0]
    model = "tabular" if category == "non-finite" or (category != "model-raises" and rng.random() < 0.15) else "text"
    if category == "model-raises":
        model = "boom"
    elif category == "typed":
        model = "typed"
    gen = _Gen(rng, number, model if model in ("tabular", "typed") else "text")
    if category == "event-shapes":
        return Case(number, category, _gen_event_shapes(gen), model)
    if category == "kinesis-valid":
        kind = "kinesis"
    elif category == "dynamodb-valid":
        kind = "dynamodb"
    else:
        kind = rng.choice(["kinesis", "dynamodb"])
    records, contents = _GENERATORS[category](gen, kind)
    case = Case(number, category, {"Records": records}, model, contents, check_json=category == "deep")
    n = len(records)
    if rng.random() < 0.5:
        case.sink_fails = frozenset(rng.sample(range(n), min(n, rng.choice([0, 0, 1, 2])))) if n else frozenset()
    if rng.random() < 0.4:
        case.quarantine_fails = frozenset(rng.sample(range(n), min(n, rng.choice([0, 1])))) if n else frozenset()
    return case

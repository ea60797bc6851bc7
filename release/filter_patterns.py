"""Lambda's event filter patterns (``FilterCriteria``): validated, and matched against records as Lambda does.

An event source mapping's ``FilterCriteria`` holds up to :data:`MAX_FILTERS` patterns
(docs/aws-notes.md §2, "Event filtering"). A record is delivered when it matches **any** of them;
one that matches none is dropped before invocation (never billed) and the stream's checkpoint
moves past it. No patterns at all: every record is delivered.

A pattern is a JSON object whose syntax is EventBridge's, as far as Lambda supports it:

* a key holds either a nested pattern (an object) or a *leaf*: a non-empty list of rules, of
  which any may match (OR); the keys of one object must all match (AND);
* a rule is a literal (a string, a number, ``true``/``false``, ``null``; ``""`` matches the empty
  string) or one operator: ``{"prefix": s}``, ``{"suffix": s}`` (either may be
  ``{"equals-ignore-case": s}`` inside), ``{"equals-ignore-case": s}``,
  ``{"anything-but": value | [values] | {"prefix"|"suffix"|"equals-ignore-case": ...}}``,
  ``{"numeric": [">", 0, "<=", 5]}`` (one or two comparisons, ``=`` alone),
  ``{"exists": true | false}``;
* ``{"$or": [pattern, pattern, ...]}`` inside an object: any of those patterns may match;
* literals compare exactly: strings character by character, numbers by their JSON text
  (``300`` is not ``300.0``), ``true`` only with ``true``;
* leaves are matched over the *leaf values* at their path: an array in the record matches when any
  element does, an object is not a leaf (``exists`` looks at leaf values only), and a missing key
  matches only ``{"exists": false}``.

What a pattern is matched against (:func:`filter_document`):

* **Kinesis**: the record's ``kinesis`` object (``partitionKey``, ``sequenceNumber``,
  ``kinesisSchemaVersion``, ``approximateArrivalTimestamp``: record metadata) with ``data``
  replaced by the payload parsed as JSON. A payload that is not JSON (gzip, KPL aggregates,
  plain text) matches only patterns that do not look at ``data`` at all (AWS's table: non-JSON
  data with a JSON data pattern, "Lambda drops the record");
* **DynamoDB**: the whole stream record (``eventName``, ``dynamodb.NewImage.<attribute>.S`` ...).

This module depends on nothing else in the project: ``release.settings`` validates with it and
``localtwin.mapping`` filters with it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Filters per event source mapping (Lambda's default quota; AWS raises it to 10 on request).
MAX_FILTERS = 5
#: Characters of one pattern's JSON (``Filter.Pattern`` in the Lambda API).
MAX_PATTERN_CHARS = 4096
#: The default filter of a DynamoDB source: drop ``REMOVE`` events (the function would only skip them).
DROP_REMOVE_EVENTS: dict[str, Any] = {"eventName": [{"anything-but": ["REMOVE"]}]}
#: The keys a pattern may name at its top level, per source type (the rest is a typo).
TOP_LEVEL_KEYS = {
    "kinesis": ("data", "partitionKey", "sequenceNumber", "kinesisSchemaVersion", "approximateArrivalTimestamp"),
    "dynamodb": (
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
        "userIdentity",
    ),
}
OPERATORS = ("prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists")
_COMPARISONS = ("<", "<=", "=", ">=", ">")
_OR = "$or"


class FilterPatternError(ValueError):
    """A filter pattern Lambda would refuse; the message names the place and the fix."""


class _NotJson:
    """Stands in for a Kinesis payload that is not JSON: no pattern on ``data`` matches it."""

    def __repr__(self) -> str:
        return "<payload is not JSON>"


NOT_JSON = _NotJson()
_MISSING = object()


# --- validation --------------------------------------------------------------------------------------


def parse_pattern(value: str | Mapping[str, Any], source_type: str) -> dict[str, Any]:
    """A pattern from JSON text (as the Lambda API holds it) or an already-parsed object, validated.

    Parameters
    ----------
    value : str or mapping
        ``'{"data": {"rating": [{"numeric": [">", 3]}]}}'`` or the same as a dict (a TOML table).
    source_type : {"kinesis", "dynamodb"}
        Decides which top-level keys are allowed (:data:`TOP_LEVEL_KEYS`).

    Raises
    ------
    FilterPatternError
        Not JSON, not an object, too long, or a rule Lambda does not support.
    """
    if isinstance(value, str):
        try:
            pattern = json.loads(value)
        except json.JSONDecodeError as exc:
            raise FilterPatternError(f"is not JSON ({exc.msg} at character {exc.pos}): {value!r}") from None
    else:
        pattern = value
    if not isinstance(pattern, Mapping) or not pattern:
        raise FilterPatternError(f"must be a non-empty JSON object such as {json.dumps(DROP_REMOVE_EVENTS)}")
    pattern = json.loads(json.dumps(pattern))  # plain dicts and lists, as Lambda will read it
    text = pattern_json(pattern)
    if len(text) > MAX_PATTERN_CHARS:
        raise FilterPatternError(
            f"is {len(text):,} characters of JSON; Lambda takes at most {MAX_PATTERN_CHARS:,} per pattern: "
            "split it into several patterns (any of them may match)"
        )
    _check_object(pattern, "", source_type, top=True)
    return dict(pattern)


def pattern_json(pattern: Mapping[str, Any]) -> str:
    """The pattern as the API's ``Filter.Pattern`` string (compact JSON, keys in the order written)."""
    return json.dumps(pattern, separators=(",", ":"))


def _check_object(pattern: Mapping[str, Any], path: str, source_type: str, top: bool) -> None:
    for key, rule in pattern.items():
        where = f"{path}.{key}" if path else key
        if key == _OR:
            if not isinstance(rule, list) or len(rule) < 2 or not all(isinstance(p, dict) and p for p in rule):
                raise FilterPatternError(
                    f'{where} must be a list of at least two patterns: {{"$or": [{{...}}, {{...}}]}}'
                )
            for i, branch in enumerate(rule):
                _check_object(branch, f"{where}[{i}]", source_type, top)
            continue
        if top and key not in TOP_LEVEL_KEYS[source_type]:
            raise FilterPatternError(
                f"{where}: a {source_type} record has no such field to filter on; use one of "
                f"{', '.join(TOP_LEVEL_KEYS[source_type])}"
                + (" (the payload's fields go under data)" if source_type == "kinesis" else "")
            )
        if isinstance(rule, dict):
            if not rule:
                raise FilterPatternError(f"{where} is an empty object; give a nested pattern or a list of rules")
            _check_object(rule, where, source_type, top=False)
        elif isinstance(rule, list):
            if not rule:
                raise FilterPatternError(f'{where} is an empty list, which matches nothing; give rules: ["value"]')
            for item in rule:
                _check_rule(item, where)
        else:
            raise FilterPatternError(
                f"{where} = {json.dumps(rule)} must be a list of rules: [{json.dumps(rule)}] (or a nested pattern)"
            )


def _check_rule(rule: Any, where: str) -> None:
    if rule is None or isinstance(rule, str | int | float | bool):
        return
    if not isinstance(rule, dict) or len(rule) != 1:
        raise FilterPatternError(
            f"{where}: {json.dumps(rule)} is not a rule; use a literal or one operator of {', '.join(OPERATORS)}"
        )
    [(operator, operand)] = rule.items()
    if operator in ("prefix", "suffix"):
        if not (isinstance(operand, str) or _is_ignore_case(operand)):
            raise FilterPatternError(f'{where}: {operator} takes a string: {{"{operator}": "text"}}')
    elif operator == "equals-ignore-case":
        if not isinstance(operand, str):
            raise FilterPatternError(f'{where}: equals-ignore-case takes a string: {{"equals-ignore-case": "text"}}')
    elif operator == "anything-but":
        _check_anything_but(operand, where)
    elif operator == "numeric":
        _check_numeric(operand, where)
    elif operator == "exists":
        if not isinstance(operand, bool):
            raise FilterPatternError(f'{where}: exists takes true or false: {{"exists": true}}')
    else:
        raise FilterPatternError(
            f"{where}: {operator!r} is not an operator Lambda event filtering supports; use one of {', '.join(OPERATORS)}"
        )


def _is_ignore_case(operand: Any) -> bool:
    return (
        isinstance(operand, dict)
        and list(operand) == ["equals-ignore-case"]
        and isinstance(operand["equals-ignore-case"], str)
    )


def _check_anything_but(operand: Any, where: str) -> None:
    if isinstance(operand, dict):
        if len(operand) != 1 or next(iter(operand)) not in ("prefix", "suffix", "equals-ignore-case"):
            raise FilterPatternError(
                f"{where}: anything-but takes a value, a list of values, or one of prefix, suffix, "
                'equals-ignore-case: {"anything-but": {"prefix": "test-"}}'
            )
        [(inner, text)] = operand.items()
        texts = text if inner == "equals-ignore-case" and isinstance(text, list) else [text]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise FilterPatternError(f"{where}: anything-but {inner} takes a string")
        return
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise FilterPatternError(f'{where}: anything-but needs at least one value: {{"anything-but": ["REMOVE"]}}')
    for value in values:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise FilterPatternError(f"{where}: anything-but values are strings or numbers, not {json.dumps(value)}")


def _check_numeric(operand: Any, where: str) -> None:
    example = '{"numeric": [">", 0, "<=", 5]}'
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise FilterPatternError(f"{where}: numeric takes one or two comparisons: {example}")
    pairs = [(operand[i], operand[i + 1]) for i in range(0, len(operand), 2)]
    for op, number in pairs:
        if op not in _COMPARISONS or not _is_number(number):
            raise FilterPatternError(
                f"{where}: numeric {json.dumps(operand)}: each comparison is one of {' '.join(_COMPARISONS)} "
                f"and a number: {example}"
            )
    if len(pairs) == 2:
        (low_op, low), (high_op, high) = pairs
        if low_op not in (">", ">=") or high_op not in ("<", "<=") or low >= high:
            raise FilterPatternError(
                f"{where}: numeric {json.dumps(operand)}: a range is a lower bound (> or >=) then a higher "
                f"upper bound (< or <=): {example}"
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- matching --------------------------------------------------------------------------------------


def matches(pattern: Mapping[str, Any], document: Any) -> bool:
    """Whether ``document`` (a :func:`filter_document`) matches one validated ``pattern``."""
    return _match_object(pattern, document)


def matches_any(patterns: Sequence[Mapping[str, Any]], document: Any) -> bool:
    """Whether Lambda delivers the record: no patterns, or at least one that matches."""
    return not patterns or any(_match_object(p, document) for p in patterns)


def _match_object(pattern: Mapping[str, Any], node: Any) -> bool:
    if isinstance(node, list):  # an array of objects: any element may match the nested pattern
        return any(_match_object(pattern, element) for element in node)
    for key, rule in pattern.items():
        if key == _OR:
            if not any(_match_object(branch, node) for branch in rule):
                return False
            continue
        child = node[key] if isinstance(node, dict) and key in node else _MISSING
        if child is NOT_JSON:
            return False
        if isinstance(rule, dict):
            if not _match_object(rule, child if child is not _MISSING else {}):
                return False
        elif not _match_leaf(rule, _leaf_values(child)):
            return False
    return True


def _leaf_values(node: Any) -> list[Any]:
    """The leaf values at a path: arrays flattened, objects (and a missing key) contribute none."""
    if node is _MISSING or isinstance(node, dict):
        return []
    if isinstance(node, list):
        return [leaf for element in node for leaf in _leaf_values(element)]
    return [node]


def _match_leaf(rules: Iterable[Any], values: list[Any]) -> bool:
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if rule["exists"] == bool(values):
                return True
        elif any(_match_rule(rule, value) for value in values):
            return True
    return False


def _match_rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        return _equals(rule, value)
    [(operator, operand)] = rule.items()
    if operator == "prefix":
        return _affix(operand, value, str.startswith)
    if operator == "suffix":
        return _affix(operand, value, str.endswith)
    if operator == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == operand.casefold()
    if operator == "anything-but":
        return not _anything_but_excludes(operand, value)
    if operator == "numeric":
        return _is_number(value) and _numeric(operand, value)
    raise FilterPatternError(f"unvalidated rule {json.dumps(rule)}")


def _equals(literal: Any, value: Any) -> bool:
    if literal is None or isinstance(literal, bool) or isinstance(value, bool) or value is None:
        return literal is value
    if isinstance(literal, str) or isinstance(value, str):
        return type(literal) is type(value) and literal == value
    return json.dumps(literal) == json.dumps(value)  # numbers by their JSON text, as Lambda does


def _affix(operand: Any, value: Any, test: Any) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(operand, dict):
        return bool(test(value.casefold(), operand["equals-ignore-case"].casefold()))
    return bool(test(value, operand))


def _anything_but_excludes(operand: Any, value: Any) -> bool:
    if isinstance(operand, dict):
        [(inner, text)] = operand.items()
        if inner == "prefix":
            return isinstance(value, str) and value.startswith(text)
        if inner == "suffix":
            return isinstance(value, str) and value.endswith(text)
        texts = text if isinstance(text, list) else [text]
        return isinstance(value, str) and any(value.casefold() == t.casefold() for t in texts)
    excluded = operand if isinstance(operand, list) else [operand]
    return any(_equals(item, value) for item in excluded)


def _numeric(operand: list[Any], value: float) -> bool:
    checks = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        "=": lambda a, b: a == b,
        ">=": lambda a, b: a >= b,
        ">": lambda a, b: a > b,
    }
    return all(checks[operand[i]](value, operand[i + 1]) for i in range(0, len(operand), 2))


# --- what a record is matched as ------------------------------------------------------------------


def kinesis_document(kinesis: Mapping[str, Any]) -> dict[str, Any]:
    """A Kinesis record's ``kinesis`` object as filters see it: ``data`` parsed as JSON (or :data:`NOT_JSON`)."""
    document = dict(kinesis)
    try:
        document["data"] = json.loads(base64.b64decode(kinesis.get("data", ""), validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        document["data"] = NOT_JSON
    return document


def filter_document(source_type: str, record: Mapping[str, Any]) -> Any:
    """What Lambda matches the patterns of a ``source_type`` mapping against, for one delivered-shape record."""
    if source_type == "kinesis":
        return kinesis_document(record["kinesis"])
    return record


def default_patterns(source_type: str) -> tuple[dict[str, Any], ...]:
    """The patterns a source gets when its ``filter_criteria`` is not set: DynamoDB drops ``REMOVE`` events."""
    return (dict(DROP_REMOVE_EVENTS),) if source_type == "dynamodb" else ()

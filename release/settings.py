"""Read and validate ``deploy.toml``, the one settings file for deploying and releasing.

``make deploy``, the ``publish-*``/``relink``/``rollback``/``releases`` targets, the
local event-source-mapping emulator and the SAM template all read this file. Every
value is checked against Lambda's limits (docs/aws-notes.md §2-§3) when it is loaded, so a
typo or an out-of-range number fails here, naming the key and what it may be, rather
than half-way through a deployment.

The path is ``deploy.toml`` at the repository root unless the environment variable
``DEPLOY_SETTINGS`` names another file.

Usage::

    from release.settings import load_settings
    settings = load_settings()
    settings.function.memory_mb, settings.event_sources[0].batch_size
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from layers.deps_layer import DEFAULT_RUNTIME, RUNTIME_GLIBC
from release.filter_patterns import MAX_FILTERS, FilterPatternError, default_patterns, parse_pattern, pattern_json

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = ROOT / "deploy.toml"
ENV_VAR = "DEPLOY_SETTINGS"

#: Lambda's Python runtimes: those the dependencies layer can be built for.
RUNTIMES = tuple(RUNTIME_GLIBC)
ARCHITECTURES = ("x86_64", "arm64")
#: ``[function] snap_start``: Lambda's ``SnapStart.ApplyOn`` values (docs/snapstart.md).
SNAP_START_CHOICES = ("None", "PublishedVersions")
#: The oldest Python runtime SnapStart supports (docs/aws-notes.md §8).
SNAP_START_MIN_PYTHON = (3, 12)
SOURCE_TYPES = ("kinesis", "dynamodb")
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
#: Retention periods CloudWatch Logs accepts, in days.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
#: Highest ``reserved_concurrency`` accepted here; Lambda refuses more than the account's limit less 100.
RESERVED_CONCURRENCY_MAX = 100000
#: Lambda's limit on the total size of a function's environment variables.
ENVIRONMENT_LIMIT_BYTES = 4096

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ALIAS = re.compile(r"^(?![0-9]+$)[A-Za-z0-9_-]{1,128}$")
_LAYER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,140}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ENV_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_SOURCE_ARN = {
    # A stream, or an enhanced fan-out consumer of one (docs/aws-notes.md §2): .../stream/NAME/consumer/C:N.
    "kinesis": re.compile(r"^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[\w.-]+(/consumer/[\w.-]+:\d+)?$"),
    "dynamodb": re.compile(r"^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table/[\w.-]+/stream/[\w.:-]+$"),
}
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$")
_DESTINATION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(sqs:[a-z0-9-]+:\d{12}:[\w-]+|sns:[a-z0-9-]+:\d{12}:[\w-]+|s3:::[\w.-]+)$"
)


class SettingsError(ValueError):
    """``deploy.toml`` is missing, malformed, or has a value Lambda would reject."""


@dataclass(frozen=True)
class FunctionSettings:
    """``[function]``: the Lambda function and the alias its event sources invoke."""

    name: str
    role_arn: str
    runtime: str = DEFAULT_RUNTIME
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    memory_mb: int = 1024
    timeout_s: int = 60
    #: ``/tmp`` in MB, 512-10240: holds a model's artifacts downloaded from S3 (docs/aws-notes.md §3).
    ephemeral_storage_mb: int = 512
    alias: str = "live"
    environment: dict[str, str] = field(default_factory=dict)
    #: Concurrent executions reserved for (and capping) the function; ``None``: none reserved.
    reserved_concurrency: int | None = None
    #: ``SnapStart.ApplyOn``: ``"PublishedVersions"`` snapshots each published version's init
    #: (cold starts become restores); ``"None"`` (the default) does not (docs/snapstart.md).
    snap_start: Literal["None", "PublishedVersions"] = "None"
    #: Fixed by the function zip's layout (``function/lambda_function.py``).
    handler: str = "lambda_function.lambda_handler"


@dataclass(frozen=True)
class LayerSettings:
    """``[layers]``: layer names and the bucket that carries zips over 50 MB."""

    model_name: str
    dependencies_name: str
    artifact_bucket: str | None = None


@dataclass(frozen=True)
class EventSource:
    """One ``[[event_sources]]`` entry: a stream and its event source mapping options."""

    type: Literal["kinesis", "dynamodb"]
    source_arn: str
    on_failure_destination_arn: str
    batch_size: int = 100
    maximum_batching_window_s: int = 1
    starting_position: Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"] = "TRIM_HORIZON"
    starting_position_timestamp: datetime | None = None
    parallelization_factor: int = 1
    bisect_batch_on_function_error: bool = True
    maximum_retry_attempts: int = 3
    maximum_record_age_s: int = 3600
    enabled: bool = True
    #: Lambda filter patterns as ``Filter.Pattern`` JSON strings; ``None`` (the key left out) means the
    #: type's default (:attr:`patterns`), ``()`` no filter at all.
    filter_criteria: tuple[str, ...] | None = None

    @property
    def patterns(self) -> tuple[dict[str, Any], ...]:
        """The filter patterns in force: ``filter_criteria``, or the type's default when it is not set
        (DynamoDB: drop ``REMOVE`` events, :func:`release.filter_patterns.default_patterns`)."""
        if self.filter_criteria is None:
            return default_patterns(self.type)
        return tuple(parse_pattern(text, self.type) for text in self.filter_criteria)

    @property
    def stream_arn(self) -> str:
        """The stream read: ``source_arn``, or the stream of an enhanced fan-out consumer ARN."""
        return stream_of(self.source_arn)

    @property
    def consumer_arn(self) -> str | None:
        """The enhanced fan-out consumer ARN (``.../stream/NAME/consumer/C:N``), ``None`` for a plain stream."""
        return self.source_arn if self.source_arn != self.stream_arn else None


def stream_of(source_arn: str) -> str:
    """The stream ARN of an event source ARN: a Kinesis consumer ARN loses its ``/consumer/...`` part."""
    return source_arn.split("/consumer/", 1)[0] if ":kinesis:" in source_arn else source_arn


@dataclass(frozen=True)
class MonitoringSettings:
    """``[monitoring]``: log retention and alarm thresholds (read by the SAM template)."""

    log_retention_days: int = 30
    iterator_age_alarm_s: int = 300
    errors_alarm_threshold: int = 1
    quarantined_alarm_threshold: int = 1
    alarm_topic_arn: str | None = None


@dataclass(frozen=True)
class HistorySettings:
    """``[history]``: the local release log (JSON Lines)."""

    file: Path


@dataclass(frozen=True)
class Settings:
    """The whole of ``deploy.toml``, validated."""

    path: Path
    function: FunctionSettings
    layers: LayerSettings
    event_sources: tuple[EventSource, ...]
    history: HistorySettings
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)


_MISSING: Any = object()
_KINDS = {
    int: "a whole number",
    str: 'a "string"',
    bool: "true or false",
    dict: "a table",
    list: "an array of tables",
    datetime: "a TOML date-time such as 2026-11-21T09:00:00Z",
}


class _Table:
    """A TOML table read key by key; every error names the file, table and key."""

    def __init__(self, data: Any, where: str, path: Path, allowed: tuple[str, ...]):
        self.path, self.where = path, where
        if not isinstance(data, dict):
            self.fail(f"{where} must be a table, got {type(data).__name__}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            self.fail(f"{where} has unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(allowed)}")
        self.data = data

    def fail(self, message: str) -> None:
        raise SettingsError(f"{self.path}: {message}")

    def get(self, key: str, kind: type, default: Any = _MISSING) -> Any:
        if key not in self.data:
            if default is _MISSING:
                self.fail(f"{self.where} is missing the required key {key!r}")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(f"{self.where} {key} = {value!r} must be {_KINDS.get(kind, kind.__name__)}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = _MISSING) -> str:
        value: str = self.get(key, str, default)
        if value not in choices:
            self.fail(f"{self.where} {key} = {value!r} is not allowed; use one of: {', '.join(choices)}")
        return value

    def integer(self, key: str, low: int, high: int, default: int, unit: str = "", also: int | None = None) -> int:
        value: int = self.get(key, int, default)
        if not low <= value <= high and value != also:
            allowed = f"{low}-{high}{unit}" + (f", or {also}" if also is not None else "")
            self.fail(f"{self.where} {key} = {value} is out of range; allowed: {allowed}")
        return value

    def pattern(self, key: str, regex: re.Pattern[str], what: str, default: Any = _MISSING) -> str:
        value: str = self.get(key, str, default)
        if not regex.match(value):
            self.fail(f"{self.where} {key} = {value!r} is not {what}")
        return value


def _keys(table: type, *fixed: str) -> tuple[str, ...]:
    """The TOML keys of a settings table: its dataclass's fields but those the file cannot set."""
    return tuple(f.name for f in fields(table) if f.name not in fixed)


def _function(data: Any, path: Path) -> FunctionSettings:
    t = _Table(data, "[function]", path, _keys(FunctionSettings, "handler"))
    environment = t.get("environment", dict, {})
    for key, value in environment.items():
        if not _ENV_KEY.match(key):
            t.fail(f"[function.environment] {key!r} is not a valid variable name (letters, digits, _; letter first)")
        if not isinstance(value, str):
            t.fail(f'[function.environment] {key} = {value!r} must be a string; quote it: {key} = "{value}"')
    size = sum(len(k.encode()) + len(v.encode()) for k, v in environment.items())
    if size > ENVIRONMENT_LIMIT_BYTES:
        t.fail(f"[function.environment] holds {size} bytes; Lambda allows {ENVIRONMENT_LIMIT_BYTES} in total")
    return FunctionSettings(
        name=t.pattern("name", _FUNCTION_NAME, "a function name (1-64 letters, digits, '-' or '_')"),
        role_arn=t.pattern("role_arn", _ROLE_ARN, "an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
        runtime=t.choice("runtime", RUNTIMES, DEFAULT_RUNTIME),
        architecture=t.choice("architecture", ARCHITECTURES, "x86_64"),  # type: ignore[arg-type]
        memory_mb=t.integer("memory_mb", 128, 10240, 1024, " MB"),
        timeout_s=t.integer("timeout_s", 1, 900, 60, " seconds"),
        ephemeral_storage_mb=t.integer("ephemeral_storage_mb", 512, 10240, 512, " MB"),
        alias=t.pattern("alias", _ALIAS, "an alias name (letters, digits, '-' or '_', not only digits)", "live"),
        environment=dict(environment),
        reserved_concurrency=_reserved_concurrency(t),
        snap_start=_snap_start(t),  # type: ignore[arg-type]
    )


def _reserved_concurrency(t: _Table) -> int | None:
    """``[function] reserved_concurrency``: absent for none; 0 (which throttles every invocation) is refused."""
    if "reserved_concurrency" not in t.data:
        return None
    what = " (0 would throttle every invocation: pause a stream with enabled = false instead)"
    return t.integer("reserved_concurrency", 1, RESERVED_CONCURRENCY_MAX, 0, what)


def _snap_start(t: _Table) -> str:
    """``snap_start``, refused on a runtime SnapStart does not support (before python3.12)."""
    value = t.choice("snap_start", SNAP_START_CHOICES, "None")
    runtime = t.data.get("runtime", DEFAULT_RUNTIME)
    if value != "None" and tuple(int(n) for n in runtime.removeprefix("python").split(".")) < SNAP_START_MIN_PYTHON:
        t.fail(
            f'[function] snap_start = "{value}" needs python3.12 or later (runtime = "{runtime}"): '
            'raise the runtime or set snap_start = "None"'
        )
    storage = t.data.get("ephemeral_storage_mb", 512)
    if value != "None" and isinstance(storage, int) and storage > 512:
        t.fail(
            f'[function] snap_start = "{value}" allows at most 512 MB of ephemeral storage '
            f"(ephemeral_storage_mb = {storage}): lower it, or keep the model in its layer, or set "
            'snap_start = "None" (docs/snapstart.md)'
        )
    return value


def _layers(data: Any, path: Path) -> LayerSettings:
    t = _Table(data, "[layers]", path, ("model_name", "dependencies_name", "artifact_bucket"))
    what = "a layer name (1-140 letters, digits, '-' or '_')"
    model_name = t.pattern("model_name", _LAYER_NAME, what)
    dependencies_name = t.pattern("dependencies_name", _LAYER_NAME, what)
    if model_name == dependencies_name:
        t.fail("[layers] model_name and dependencies_name must differ: relinking replaces layers by name")
    bucket = t.get("artifact_bucket", str, "")
    if bucket and not _BUCKET.match(bucket):
        t.fail(
            f"[layers] artifact_bucket = {bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, '.', '-')"
        )
    return LayerSettings(model_name, dependencies_name, bucket or None)


def _event_source(data: Any, index: int, path: Path) -> EventSource:
    t = _Table(data, f"[[event_sources]] #{index}", path, _keys(EventSource))
    kind = t.choice("type", SOURCE_TYPES)
    example = {
        "kinesis": "arn:aws:kinesis:REGION:ACCOUNT:stream/NAME, or a consumer .../stream/NAME/consumer/C:N",
        "dynamodb": "arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL",
    }[kind]
    source_arn = t.pattern("source_arn", _SOURCE_ARN[kind], f"a {kind} stream ARN ({example})")
    position = t.choice("starting_position", STARTING_POSITIONS, "TRIM_HORIZON")
    timestamp = t.get("starting_position_timestamp", datetime, None)
    if position == "AT_TIMESTAMP":
        if kind != "kinesis":
            t.fail(f"{t.where} starting_position AT_TIMESTAMP is Kinesis-only; use TRIM_HORIZON or LATEST")
        if timestamp is None or timestamp.tzinfo is None:
            t.fail(f"{t.where} starting_position AT_TIMESTAMP needs starting_position_timestamp = 2026-11-21T09:00:00Z")
    elif timestamp is not None:
        t.fail(f'{t.where} starting_position_timestamp is only used with starting_position = "AT_TIMESTAMP"')
    return EventSource(
        type=kind,  # type: ignore[arg-type]
        source_arn=source_arn,
        on_failure_destination_arn=t.pattern(
            "on_failure_destination_arn",
            _DESTINATION_ARN,
            "an SQS queue, SNS topic or S3 bucket ARN (records Lambda gives up on go there; it is required "
            "so that no record is dropped silently)",
        ),
        batch_size=t.integer("batch_size", 1, 10000, 100, " records"),
        maximum_batching_window_s=t.integer("maximum_batching_window_s", 0, 300, 1, " seconds"),
        starting_position=position,  # type: ignore[arg-type]
        starting_position_timestamp=timestamp,
        parallelization_factor=t.integer("parallelization_factor", 1, 10, 1, " batches per shard"),
        bisect_batch_on_function_error=t.get("bisect_batch_on_function_error", bool, True),
        maximum_retry_attempts=t.integer("maximum_retry_attempts", -1, 10000, 3, " (-1 = until expiry)"),
        maximum_record_age_s=t.integer("maximum_record_age_s", 60, 604800, 3600, " seconds", also=-1),
        enabled=t.get("enabled", bool, True),
        filter_criteria=_filter_criteria(t, kind),
    )


def _filter_criteria(t: _Table, kind: str) -> tuple[str, ...] | None:
    """``filter_criteria``: a list of Lambda filter patterns, each a JSON string or a TOML table."""
    if "filter_criteria" not in t.data:
        return None
    patterns = t.data["filter_criteria"]
    if not isinstance(patterns, list):
        t.fail(
            f"{t.where} filter_criteria must be a list of patterns, e.g. "
            f"filter_criteria = ['{pattern_json(default_patterns('dynamodb')[0])}'] (or [] for no filter)"
        )
    if len(patterns) > MAX_FILTERS:
        t.fail(
            f"{t.where} filter_criteria has {len(patterns)} patterns; Lambda allows {MAX_FILTERS} per mapping by "
            'default: merge some (a list of values is an OR, and {"$or": [...]} joins patterns)'
        )
    texts = []
    for i, pattern in enumerate(patterns, 1):
        if not isinstance(pattern, str | dict):
            t.fail(f"{t.where} filter_criteria pattern {i} must be a JSON string or a table, got {pattern!r}")
        try:
            texts.append(pattern_json(parse_pattern(pattern, kind)))
        except FilterPatternError as exc:
            t.fail(f"{t.where} filter_criteria pattern {i} {exc}")
    return tuple(texts)


def _monitoring(data: Any, path: Path) -> MonitoringSettings:
    t = _Table(data, "[monitoring]", path, _keys(MonitoringSettings))
    retention = t.get("log_retention_days", int, 30)
    if retention not in LOG_RETENTION_DAYS:
        t.fail(
            f"[monitoring] log_retention_days = {retention} is not a CloudWatch Logs retention; "
            f"use one of: {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
    topic = t.get("alarm_topic_arn", str, "")
    if topic and not _TOPIC_ARN.match(topic):
        t.fail(f'[monitoring] alarm_topic_arn = {topic!r} is not an SNS topic ARN (or "" for no notifications)')
    return MonitoringSettings(
        log_retention_days=retention,
        iterator_age_alarm_s=t.integer("iterator_age_alarm_s", 1, 31536000, 300, " seconds"),
        errors_alarm_threshold=t.integer("errors_alarm_threshold", 1, 1000000, 1, " errors"),
        quarantined_alarm_threshold=t.integer("quarantined_alarm_threshold", 1, 1000000, 1, " records"),
        alarm_topic_arn=topic or None,
    )


def _check_stream_concurrency(top: _Table, function: FunctionSettings, sources: tuple[EventSource, ...]) -> None:
    """A reservation below what the streams need at the least (one shard each) would stall one of them."""
    floor = sum(source.parallelization_factor for source in sources)
    if function.reserved_concurrency is not None and function.reserved_concurrency < floor:
        top.fail(
            f"[function] reserved_concurrency = {function.reserved_concurrency} is below the {floor} concurrent "
            "batches the streams take with one shard each (the sum of their parallelization_factor); reserve "
            "shards x parallelization_factor per stream, plus the HTTP peak (docs/infrastructure.md#concurrency)"
        )


def parse_settings(data: dict[str, Any], path: Path) -> Settings:
    """Validate an already-parsed ``deploy.toml`` document.

    Parameters
    ----------
    data : dict
        The document as ``tomllib`` returns it.
    path : Path
        The file it came from: named in errors; ``[history] file`` is relative to it.

    Returns
    -------
    Settings

    Raises
    ------
    SettingsError
        Naming the first bad key, its value and what is allowed.
    """
    top = _Table(data, "deploy.toml", path, ("function", "layers", "event_sources", "history", "monitoring"))
    sources = top.get("event_sources", list, [])
    event_sources = tuple(_event_source(entry, i + 1, path) for i, entry in enumerate(sources))
    seen: set[str] = set()
    for source in event_sources:
        if source.stream_arn in seen:  # a stream and a consumer of it would deliver every record twice
            top.fail(f"[[event_sources]] lists {source.stream_arn} twice; keep one entry per stream")
        seen.add(source.stream_arn)
    history = _Table(top.get("history", dict, {}), "[history]", path, ("file",))
    history_file = Path(history.get("file", str, "build/releases.jsonl"))
    function = _function(top.get("function", dict), path)
    _check_stream_concurrency(top, function, event_sources)
    return Settings(
        path=path,
        function=function,
        layers=_layers(top.get("layers", dict), path),
        event_sources=event_sources,
        history=HistorySettings(history_file if history_file.is_absolute() else path.parent / history_file),
        monitoring=_monitoring(top.get("monitoring", dict, {}), path),
    )


def settings_path(path: Path | str | None = None) -> Path:
    """The settings file to read: ``path``, else ``$DEPLOY_SETTINGS``, else ``deploy.toml``."""
    if path is not None:
        return Path(path)
    return Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else DEFAULT_PATH


def load_settings(path: Path | str | None = None) -> Settings:
    """Read and validate the settings file.

    Parameters
    ----------
    path : Path or str, optional
        Defaults to ``$DEPLOY_SETTINGS``, then ``deploy.toml`` at the repository root.

    Raises
    ------
    SettingsError
        If the file is missing, is not TOML, or a value is invalid.
    """
    path = settings_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(
            f"{path}: no such settings file; copy deploy.toml from the repository root or fix ${ENV_VAR}"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    return parse_settings(data, path)

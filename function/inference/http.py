"""Synchronous predictions over HTTP: API Gateway REST, HTTP API and Lambda function URLs.

The function answers three routes beside the stream:

``GET /models``
    name, version, task and (for a classifier) classes of the model in the layer;
``GET /models/{name}/metadata``
    the manifest's public fields (:data:`PUBLIC_FIELDS`);
``POST /models/{name}/predict``
    one instance (a JSON object) answered with ``{"model", "prediction"}``, or a list of
    instances answered with ``{"model", "predictions"}`` in their order; the whole list
    is predicted in one ``model.predict`` call. A prediction holds the result's fields for
    the model's task (:data:`inference.manifest.RESULT_FIELDS`), as in every sink.

Three event shapes carry them, told apart by :func:`http_kind`:

``rest``
    API Gateway REST API proxy integration (payload 1.0): ``httpMethod``, ``path``,
    ``requestContext.stage``. The answer has ``statusCode``, ``headers``, ``body`` and
    ``isBase64Encoded``.
``http-api``
    API Gateway HTTP API, payload format 2.0: ``version`` ``"2.0"``, ``rawPath``,
    ``requestContext.http.method``. The answer has the same four fields (2.0 also
    allows ``cookies``, which these routes never set).
``function-url``
    A Lambda function URL: the 2.0 shape, from a ``requestContext.domainName`` of the form
    ``<url-id>.lambda-url.<region>.on.aws``.

A stage name in front of the path (``/prod/models``) is dropped when the path does not
match a route as it stands. Errors are JSON ``{"error": {"code", "message", ...}}`` and
never carry a stack trace, a file path or an exception's text: those go to the logs.

This module imports only the standard library and the function's light modules (no
boto3, no numpy). ``lambda_function`` imports it on the first event that has a
``requestContext``, so a stream-only function never loads it.
"""

from __future__ import annotations

import binascii
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Protocol, TypedDict
from urllib.parse import unquote

from .decode import extract_input
from .manifest import Manifest, TabularInput, Task, TextInput, manifest_task
from .model import Predictions

logger = logging.getLogger("inference")

HttpKind = Literal["rest", "http-api", "function-url"]
RouteName = Literal["list_models", "metadata", "predict"]

#: Most instances one predict request may carry.
MAX_INSTANCES = 1000
#: Largest request body accepted, decoded (Lambda's synchronous payload limit, 6 MB).
MAX_BODY_BYTES = 6 * 1024 * 1024
#: Manifest fields ``GET /models/{name}/metadata`` shows. The pipeline (artifact file
#: names and hashes) and the library versions describe the build, not the model's use.
PUBLIC_FIELDS = ("name", "version", "created_at", "task", "input", "classes", "class_probabilities", "metrics")
#: At most this many per-instance problems are listed in a 400 answer.
MAX_PROBLEMS = 20

JSON_HEADERS = {"Content-Type": "application/json"}
_FUNCTION_URL_DOMAIN = re.compile(r"\.lambda-url\.[a-z0-9-]+\.on\.aws$")
_ROUTES_HELP = "GET /models, GET /models/{name}/metadata, POST /models/{name}/predict"


# --- wire shapes -------------------------------------------------------------------------
# The request events are read as plain dicts (:func:`read_request`); their exact shapes are
# built by ``testing.events`` and checked against SAM's own in the tests.


class HttpResponse(TypedDict):
    """What a REST proxy integration (payload 1.0), an HTTP API (2.0) or a function URL must
    return: the same four fields (2.0 also allows ``cookies``, which these routes never set)."""

    statusCode: int
    headers: dict[str, str]
    body: str
    isBase64Encoded: bool


# --- response bodies ---------------------------------------------------------------------


class ModelSummary(TypedDict):
    name: str
    version: str
    task: Task
    #: A classifier's classes; absent for other tasks.
    classes: NotRequired[list[Any]]


class ModelList(TypedDict):
    """``GET /models``."""

    models: list[ModelSummary]


#: One result: the fields of :data:`inference.manifest.RESULT_FIELDS` for the model's task.
PredictionBody = dict[str, Any]


class ModelRef(TypedDict):
    name: str
    version: str


class SinglePredictResponse(TypedDict):
    """``POST /models/{name}/predict`` with one instance (a JSON object)."""

    model: ModelRef
    prediction: PredictionBody


class ListPredictResponse(TypedDict):
    """``POST /models/{name}/predict`` with a list of instances, answered in their order."""

    model: ModelRef
    predictions: list[PredictionBody]


class Problem(TypedDict):
    """One instance that does not fit the model's input contract."""

    instance: int  # position in the list (0 for a single instance)
    field: str | None  # the field or feature at fault, when there is one
    message: str


class ErrorDetail(TypedDict):
    code: str
    message: str
    problems: NotRequired[list[Problem]]
    request_id: NotRequired[str]


class ErrorResponse(TypedDict):
    error: ErrorDetail


# --- the model, as HTTP sees it ------------------------------------------------------------


class ServedModel(Protocol):
    """What the routes need of :class:`inference.model.LoadedModel`."""

    @property
    def manifest(self) -> Manifest: ...

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def predict(self, inputs: Sequence[Any]) -> Predictions: ...


# --- recognising and reading requests ----------------------------------------------------


def http_kind(event: Any) -> HttpKind | None:
    """Which HTTP event shape ``event`` has, or ``None`` if it is not an HTTP request.

    Parameters
    ----------
    event : Any
        The event Lambda passed to the handler.

    Returns
    -------
    {"rest", "http-api", "function-url"} or None
    """
    if not isinstance(event, dict):
        return None
    context = event.get("requestContext")
    if not isinstance(context, dict):
        return None
    if event.get("version") == "2.0":
        http = context.get("http")
        if isinstance(http, dict) and isinstance(http.get("method"), str):
            domain = context.get("domainName")
            if isinstance(domain, str) and _FUNCTION_URL_DOMAIN.search(domain):
                return "function-url"
            return "http-api"
        return None
    if isinstance(event.get("httpMethod"), str) and isinstance(event.get("path"), str):
        return "rest"
    return None


def is_http_event(event: Any) -> bool:
    """True for an API Gateway REST / HTTP API proxy event or a function URL event."""
    return http_kind(event) is not None


@dataclass(frozen=True)
class Route:
    """A matched route: which one, the methods it allows, and the model name in the path."""

    name: RouteName
    template: str
    allow: tuple[str, ...]
    model_name: str | None = None


def match_route(path: str) -> Route | None:
    """The route ``path`` names (whatever the method), or ``None``."""
    parts = path.strip("/").split("/")
    if parts == ["models"]:
        return Route("list_models", "/models", ("GET",))
    if len(parts) == 3 and parts[0] == "models":
        name = unquote(parts[1])
        if parts[2] == "metadata":
            return Route("metadata", "/models/{name}/metadata", ("GET",), name)
        if parts[2] == "predict":
            return Route("predict", "/models/{name}/predict", ("POST",), name)
    return None


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an HTTP event the routes use."""

    kind: HttpKind
    method: str
    #: The request path with any stage prefix removed when that makes it a route.
    path: str
    #: The route ``path`` names, whatever the method; ``None`` for an unknown path.
    route: Route | None
    body: str | None
    base64: bool
    #: API Gateway's (or the function URL's) request id.
    gateway_request_id: str | None = None


def _resolve(path: str, stage: Any) -> tuple[str, Route | None]:
    """The routing path and its route: ``path`` as it stands, else without a ``/<stage>`` prefix."""
    matched = match_route(path)
    if matched is None and isinstance(stage, str) and stage and stage != "$default":
        prefix = f"/{stage}"
        if path == prefix or path.startswith(prefix + "/"):
            stripped = path[len(prefix) :] or "/"
            without = match_route(stripped)
            if without is not None:
                return stripped, without
    return path, matched


def read_request(event: dict[str, Any], kind: HttpKind) -> HttpRequest:
    """Method, routing path, route and body of an HTTP event of shape ``kind``."""
    context = event.get("requestContext") or {}
    if kind == "rest":
        method, path = event["httpMethod"], event["path"]
    else:
        method = context["http"]["method"]
        path = event.get("rawPath") or context["http"].get("path") or "/"
    path, matched = _resolve(path, context.get("stage"))
    body = event.get("body")
    request_id = context.get("requestId")
    return HttpRequest(
        kind=kind,
        method=method.upper(),
        path=path,
        route=matched,
        body=body if isinstance(body, str) else None,
        base64=event.get("isBase64Encoded") is True,
        gateway_request_id=request_id if isinstance(request_id, str) else None,
    )


# --- answers -------------------------------------------------------------------------------


@dataclass
class Answer:
    """A status, a JSON body, extra headers; and what to log about it."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    instances: int = 0
    predict_ms: float = 0.0


class HttpError(Exception):
    """An error answer: raised inside a route, turned into ``{"error": ...}``."""

    def __init__(self, status: int, code: str, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.problems = problems
        self.headers: dict[str, str] = {}


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_body(error: HttpError, request_id: str | None) -> ErrorResponse:
    """``{"error": {"code", "message", ...}}`` for ``error``, with the Lambda request id."""
    detail: ErrorDetail = {"code": error.code, "message": error.message}
    if error.problems is not None:
        detail["problems"] = error.problems
    if request_id:
        detail["request_id"] = request_id
    return {"error": detail}


def to_response(answer: Answer) -> HttpResponse:
    """The integration response: one shape serves all three kinds (:class:`HttpResponse`)."""
    body = json.dumps(answer.body, separators=(",", ":"), default=str)
    return {
        "statusCode": answer.status,
        "headers": {**JSON_HEADERS, **answer.headers},
        "body": body,
        "isBase64Encoded": False,
    }


# --- the routes ----------------------------------------------------------------------------


def _require_model(model: ServedModel | None, name: str | None) -> ServedModel:
    if model is None:
        raise HttpError(
            503,
            "model_unavailable",
            "the model could not be loaded, so this function cannot serve it; the function's logs say why",
        )
    if name is not None and name != model.name:
        raise HttpError(
            404,
            "model_not_found",
            f"no model named {_clip(name)!r}; this function serves {model.name!r} (GET /models lists it)",
        )
    return model


def list_models(model: ServedModel) -> ModelList:
    """``GET /models``: the one model in the layer."""
    summary: ModelSummary = {"name": model.name, "version": model.version, "task": manifest_task(model.manifest)}
    if "classes" in model.manifest:
        summary["classes"] = list(model.manifest["classes"])
    return {"models": [summary]}


def metadata(model: ServedModel) -> dict[str, Any]:
    """``GET /models/{name}/metadata``: the manifest's :data:`PUBLIC_FIELDS` (``task`` even when
    the manifest predates it)."""
    manifest: dict[str, Any] = {**model.manifest, "task": manifest_task(model.manifest)}
    return {key: manifest[key] for key in PUBLIC_FIELDS if key in manifest}


def _decode_body(request: HttpRequest) -> bytes:
    if request.body is None or request.body == "":
        raise HttpError(400, "empty_body", "the request has no body: send one JSON instance or a list of instances")
    if request.base64:
        if len(request.body) > MAX_BODY_BYTES * 4 // 3 + 4:
            raise _too_large_body(len(request.body) * 3 // 4)
        try:
            raw = binascii.a2b_base64(request.body, strict_mode=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "invalid_body", "the body is marked base64-encoded but is not valid base64") from None
    else:
        raw = request.body.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise _too_large_body(len(raw))
    return raw


def _too_large_body(size: int) -> HttpError:
    return HttpError(
        413, "payload_too_large", f"the body has about {size:,} bytes; at most {MAX_BODY_BYTES:,} are accepted"
    )


def parse_instances(raw: bytes) -> tuple[list[Any], bool]:
    """The instances in a predict body, and whether they came as a list.

    Raises
    ------
    HttpError
        400 for a body that is not UTF-8 JSON holding an object or a non-empty list;
        413 for a list of more than :data:`MAX_INSTANCES`.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HttpError(400, "invalid_body", f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = str(exc)[:80] if isinstance(exc, ValueError) else "nested too deeply"
        raise HttpError(400, "invalid_json", f"the body is not valid JSON ({reason})") from None
    if isinstance(doc, dict):
        return [doc], False
    if not isinstance(doc, list):
        raise HttpError(
            400,
            "invalid_body",
            f"the body is a JSON {type(doc).__name__}; send one instance (an object) or a list of instances",
        )
    if not doc:
        raise HttpError(400, "empty_list", "the list of instances is empty: send at least one")
    if len(doc) > MAX_INSTANCES:
        raise HttpError(
            413,
            "too_many_instances",
            f"the list has {len(doc):,} instances; at most {MAX_INSTANCES:,} are accepted per request",
        )
    return doc, True


def _field_named(reason: str, contract: TextInput | TabularInput) -> str | None:
    """The field or feature that ``extract_input``'s ``reason`` is about, if any."""
    names = [contract["field"]] if contract["kind"] == "text" else contract["features"]
    return next((name for name in names if repr(name) in reason), None)


def model_inputs(instances: list[Any], contract: TextInput | TabularInput, listed: bool) -> list[Any]:
    """Each instance as a model input, by the manifest's input contract.

    Raises
    ------
    HttpError
        400 ``invalid_input`` when any instance does not fit: the message names the first
        one's field and problem (:func:`inference.decode.extract_input`'s reasons) and
        ``problems`` lists up to :data:`MAX_PROBLEMS` of them.
    """
    inputs, problems = [], []
    for index, instance in enumerate(instances):
        value, reason = extract_input(instance, contract, "instance")
        if reason:
            problems.append(Problem(instance=index, field=_field_named(reason, contract), message=reason))
        else:
            inputs.append(value)
    if problems:
        first = problems[0]
        message = f"instances[{first['instance']}]: {first['message']}" if listed else first["message"]
        if len(problems) > 1:
            message += f" (and {len(problems) - 1} more instance{'s' if len(problems) > 2 else ''})"
        raise HttpError(400, "invalid_input", message, problems=problems[:MAX_PROBLEMS])
    return inputs


def predict(model: ServedModel, request: HttpRequest) -> Answer:
    """``POST /models/{name}/predict``: every instance in one ``model.predict`` call."""
    instances, listed = parse_instances(_decode_body(request))
    inputs = model_inputs(instances, model.manifest["input"], listed)
    started = time.perf_counter()
    out = model.predict(inputs)
    predict_ms = (time.perf_counter() - started) * 1000
    predictions: list[PredictionBody] = out.results()
    if len(predictions) != len(inputs):
        raise RuntimeError(f"the model returned {len(predictions)} predictions for {len(inputs)} inputs")
    ref = ModelRef(name=model.name, version=model.version)
    body: SinglePredictResponse | ListPredictResponse = (
        {"model": ref, "predictions": predictions} if listed else {"model": ref, "prediction": predictions[0]}
    )
    return Answer(200, body, instances=len(inputs), predict_ms=predict_ms)


def route(request: HttpRequest, model: ServedModel | None) -> Answer:
    """Answer one request. Order: route (404), method (405), model (503, 404), body.

    Raises
    ------
    HttpError
        For every 4xx and 5xx answer.
    """
    matched = request.route
    if matched is None:
        raise HttpError(
            404, "route_not_found", f"no route {request.method} {_clip(request.path)}; routes: {_ROUTES_HELP}"
        )
    if request.method not in matched.allow:
        error = HttpError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {matched.template}; use {', '.join(matched.allow)}",
        )
        error.headers["Allow"] = ", ".join(matched.allow)
        raise error
    served = _require_model(model, matched.model_name)
    if matched.name == "list_models":
        return Answer(200, list_models(served))
    if matched.name == "metadata":
        return Answer(200, metadata(served))
    return predict(served, request)


def handle_http(event: dict[str, Any], model: ServedModel | None, request_id: str | None = None) -> HttpResponse:
    """Answer an HTTP event; never raises.

    Parameters
    ----------
    event : dict
        A REST proxy, HTTP API 2.0 or function URL event (:func:`http_kind` is not None).
    model : ServedModel or None
        The loaded model, or ``None`` when it failed to load (every model route is then 503).
    request_id : str, optional
        The Lambda request id, echoed in error bodies to find the request in the logs.

    Returns
    -------
    dict
        The integration response: ``statusCode``, ``headers``, ``body`` (JSON),
        ``isBase64Encoded``.
    """
    kind = http_kind(event) or "rest"
    started = time.perf_counter()
    request: HttpRequest | None = None
    try:
        request = read_request(event, kind)
        answer = route(request, model)
    except HttpError as exc:
        answer = Answer(exc.status, error_body(exc, request_id), exc.headers)
    except Exception:
        logger.exception("http request failed", extra={"request_id": request_id, "http_kind": kind})
        error = HttpError(500, "internal_error", "the request could not be answered; the function's logs say why")
        answer = Answer(500, error_body(error, request_id))
    matched = request.route if request is not None else None
    logger.info(
        "http request",
        extra={
            "http_kind": kind,
            "method": request.method if request else None,
            "route": matched.template if matched else None,
            "status": answer.status,
            "instances": answer.instances,
            "predict_ms": round(answer.predict_ms, 3),
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_id": request_id,
            "gateway_request_id": request.gateway_request_id if request else None,
        },
    )
    return to_response(answer)

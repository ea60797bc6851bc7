"""AWS Lambda entry point: ``lambda_function.lambda_handler``.

An adapter only. The model is loaded and verified once per execution environment,
during init. Stream batches are handed to :meth:`inference.app.App.handle`; HTTP
requests (API Gateway REST or HTTP API, function URLs) to
:func:`inference.http.handle_http`, which is imported by the first event that carries a
``requestContext`` (only those can be HTTP requests), so stream functions never load it.

Before anything imports scikit-learn, :mod:`inference.lean_import` defers the modules that
loading and predicting do not use (``scipy.stats`` and others), so they are never imported
unless a model needs them. With SnapStart, the hooks of :mod:`inference.snapstart` are registered once init succeeded:
a warm-up batch before the snapshot, fresh clients and seeds after each restore.

If init fails (a tampered or incompatible model layer, a bad setting), the error is kept
and logged: every stream batch raises it again, so nothing is ever scored without a
verified model, while HTTP callers get a 503 with a safe message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from inference import lean_import

lean_import.defer_unused_modules()  # before anything imports scikit-learn (docs/snapstart.md, "A lean import")

from inference import snapstart  # noqa: E402
from inference.app import App  # noqa: E402

if TYPE_CHECKING:  # for the annotations only: stream functions never import inference.http
    from inference.events import StreamResponse
    from inference.http import HttpResponse

app: App | None = None
init_error: Exception | None = None
try:
    app = App.from_env()
    snapstart.register(app)
except Exception as exc:
    init_error, init_traceback = exc, exc.__traceback__
    logging.getLogger("inference").error("init failed; HTTP requests get 503, stream batches raise it", exc_info=exc)
lean_import.forget_unused_optional_modules()  # scikit-learn (if the init got that far) is imported by now


def lambda_handler(event: Any, context: Any) -> StreamResponse | HttpResponse:
    if isinstance(event, dict) and "requestContext" in event:
        from inference.http import handle_http, is_http_event

        if is_http_event(event):
            return handle_http(event, app.model if app is not None else None, getattr(context, "aws_request_id", None))
    if app is None:
        assert init_error is not None  # set whenever app is not
        # The init traceback each time, not one that grows with every invocation.
        raise init_error.with_traceback(init_traceback)
    return app.handle(event, context)

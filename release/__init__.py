"""Publish layers, release model versions, relink and roll back, deploy: against AWS Lambda.

Run it as ``python -m release COMMAND`` (:mod:`release.cli`); settings come
from ``deploy.toml`` (:mod:`release.settings`), credentials and region from boto3's usual
chain (``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ``~/.aws/config``, an SSO or instance role).

A *release* moves the model layer: the function's layer list is rewritten with only
the model layer's ARN replaced, the update is awaited, a function version is published
and the alias (``[function] alias``, which the event source mappings invoke) is moved
to it. Each release is written where it survives a lost laptop: the layer version's
description (model name, version, library versions, sha256), the function version's
description and its layer list, and the function's tags; and, for convenience, one
JSON line in the local history file (``[history] file``).

Modules, each with one job:

``errors``         :class:`~release.errors.ReleaseError`, raised by every step.
``descriptions``   the layer and version description texts, and comparing their library versions.
``arns``           layer version ARNs and a function's layer list.
``model_zip``      verifying a model layer zip against its manifest.
``upload``         handing a zip to Lambda, inline or through S3.
``aws``            boto3 clients, lookups, waiters, retries on concurrent updates.
``compatibility``  whether a layer version fits the function.
``history``        the function's release tags and the local history file.
``relink``         releasing a model layer version: relink, rollback, the releases list.
``publish``        publishing the dependencies and model layers.
``deploy``         the function, its alias and its event source mappings, from ``deploy.toml``.
``settings``       ``deploy.toml``, read and validated.
``cli``            the command line.
"""

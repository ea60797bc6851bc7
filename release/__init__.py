"""Publish layers, release model versions, relink and roll back, deploy: against AWS Lambda.

Run it as ``python -m release COMMAND`` (:mod:`release.cli`); settings come
from ``deploy.toml`` (:mod:`release.settings`), credentials and region from boto3's usual
chain (``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ``~/.aws/config``, an SSO or instance role).

A *release* moves the model layer: the live version's layer list (the alias's, never
``$LATEST``'s) is staged with only the model layer's ARN replaced, the update is awaited,
a function version is published and the alias (``[function] alias``, which the event
source mappings invoke) is moved to it. Each release is written where it survives a lost
laptop: the layer version's description (model name, version, library versions, sha256),
the function version's description and its layer list, and the function's tags; and in
the local history file (``[history] file``).

Every release command is a small transaction (docs/release-transactions.md). AWS is the
ground truth: the function's ``release-pending*`` tags are written before the command's
first change to the function and removed after its last; ``$LATEST`` differing from the
alias's version, or versions newer than the one the release started from, are visible
without any tag. The local history file adds what this machine intended (an ``intent``
line before the first AWS call, an ``outcome`` line after the last). While a release is
unfinished (:class:`~release.state.FunctionState`), only re-running that command (which
finishes it) or ``abort`` (which undoes it, :func:`~release.transaction.abort`) may change
the function; every other release command refuses, saying what AWS holds and what to run.

Modules, each with one job:

``errors``         :class:`~release.errors.ReleaseError`, raised by every step.
``descriptions``   the layer and version description texts, and comparing their library versions.
``arns``           layer version ARNs and a function's layer list.
``model_zip``      verifying a model layer zip against its manifest.
``upload``         handing a zip to Lambda, inline or through S3.
``aws``            boto3 clients, lookups, waiters, retries on concurrent updates.
``compatibility``  whether a layer version fits the function.
``history``        the function's release tags and the local history file (the journal).
``state``          what AWS holds of the function, and whether a release on it is unfinished.
``transaction``    a release's pending tags: begin, finish; undoing an unfinished release.
``failures``       what an AWS failure means for the user, and what to run.
``relink``         releasing a model layer version: relink, rollback.
``listing``        ``make releases``: releases, model layer versions, anything unfinished.
``publish``        publishing the dependencies and model layers.
``shadow``         a candidate model layer beside the live one: attach, promote, reject.
``canary``         a canary release: a share of the invocations by alias weights, alarms watched, promote or roll back.
``alarms``         the CloudWatch alarms a canary puts for its version, reads and deletes.
``deploy``         the function, its alias and its event source mappings, from ``deploy.toml``.
``other_mappings`` mappings of the configured streams to the function that ``deploy`` does not manage.
``settings``       ``deploy.toml``, read and validated.
``filter_patterns`` Lambda's event filter patterns: validated, and matched as Lambda matches them.
``role_policy``    the execution role's trust and least-privilege policy (also ``template.yaml``'s).
``bootstrap``      creating what a first deploy needs (``make bootstrap``).
``cli``            the command line.
"""

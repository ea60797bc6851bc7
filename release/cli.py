"""Publish layers, release model versions, relink and roll back, deploy: against AWS Lambda.

Usage (``make`` wraps each and sets ``PYTHONPATH=function:.``; settings come from
``deploy.toml``, see ``release.settings``)::

    python -m release publish-deps-layer  [--zip build/layers/deps-layer.zip]
    python -m release publish-model-layer [--zip build/layers/model-layer.zip]
                                   [--strategy all-at-once|canary|shadow] [--percent 10] [--minutes 30]
                                   [--function-zip build/function.zip] [--deps-zip build/layers/deps-layer.zip]
                                   [--candidate-zip build/layers/candidate-layer.zip]
    python -m release promote             # the candidate in shadow becomes the live model
    python -m release reject              # the candidate in shadow is detached
    python -m release relink --layer-arn arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N
    python -m release rollback
    python -m release releases
    python -m release deploy [--function-zip build/function.zip]
                                   [--deps-layer-arn ARN] [--model-layer-arn ARN]
    python -m release abort               # undo an unfinished release (make release-abort)

Credentials and region come from boto3's usual chain (``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, ``~/.aws/config``, an SSO or instance role); ``AWS_ENDPOINT_URL``
points every call elsewhere (a moto server: ``make local-aws``).

Every command but ``releases`` writes its intent to the history file before its first AWS
call and its outcome after its last (:mod:`release.history`). Exit status: 0 done, 2 refused
(a check, the settings, an unfinished release), 1 an AWS call failed (the message says what
happened and what to run: :mod:`release.failures`), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from release.aws import CallLog, Clients
from release.canary import DEFAULT_POLL_S, CanaryPlan, canary_model_layer, undo_alarms
from release.deploy import DEFAULT_FUNCTION_ZIP, deploy
from release.errors import ReleaseError
from release.failures import failure_message
from release.history import Release, write_intent, write_outcome
from release.listing import format_listing, releases
from release.publish import DEFAULT_DEPS_ZIP, DEFAULT_MODEL_ZIP, publish_deps_layer, publish_model_layer
from release.relink import relink, rollback
from release.settings import Settings, SettingsError, load_settings
from release.shadow import DEFAULT_CANDIDATE_ZIP, promote, publish_shadow, reject
from release.transaction import abort

#: The make target of each command (``abort`` is ``make release-abort``).
MAKE_TARGETS = {"abort": "release-abort"}


def _print_release(release: Release) -> None:
    if release.ended_split:
        split = ", ".join(f"version {v}: {w:.0%}" for v, w in release.ended_split.items())
        print(
            f"{release.function}:{release.alias} also sent invocations to {split} (alias weights, RoutingConfig); "
            "cleared: the alias now sends every invocation to its version"
        )
    if not release.changed:
        print(
            f"{release.function}:{release.alias} already serves {release.model_layer_arn} (version {release.version})"
        )
        return
    print(
        f"{release.function}:{release.alias} -> version {release.version}: model {release.model_name} "
        f"{release.model_version} ({release.model_layer_arn}); was version {release.previous_version} "
        f"({release.previous_model_layer_arn})"
    )


def publish_all_at_once(args: argparse.Namespace, settings: Settings, clients: Clients) -> None:
    """``STRATEGY=all-at-once`` (the default): the alias moves to the new version at once."""
    missing = [str(path) for path in (args.function_zip, args.deps_zip) if not path.is_file()]
    if missing:
        print(
            f"warning: {', '.join(missing)} missing, so whether the model fits Lambda's 250 MB unzipped is not "
            "checked (make function-zip deps-layer); the model stays in its layer",
            file=sys.stderr,
        )
    sized = {} if missing else {"function_zip": args.function_zip, "deps_zip": args.deps_zip}
    result = publish_model_layer(settings, args.zip, clients=clients, **sized)
    if result.artifacts_uri:
        print(
            "the model's artifacts would push the function over Lambda's 250 MB unzipped: uploaded them to "
            f"{result.artifacts_uri}; the model layer holds the manifest, which points there"
        )
    print(f"{'already published as' if result.reused else 'published'} {result.layer_arn}")
    if result.release is None:
        print(f"function {settings.function.name} does not exist yet: `make deploy` attaches this layer")
    else:
        _print_release(result.release)


def publish_in_shadow(args: argparse.Namespace, settings: Settings, clients: Clients) -> None:
    """``STRATEGY=shadow``: attached as a candidate beside the live model (:mod:`release.shadow`)."""
    candidate, release = publish_shadow(settings, args.zip, args.candidate_zip, clients=clients)
    print(f"candidate {candidate} {'attached' if release.changed else 'already attached'} beside the live model")
    _print_release(release)
    print("compare with `make compare`; then `make promote` or `make reject`")


def publish_canary(args: argparse.Namespace, settings: Settings, clients: Clients) -> None:
    """``STRATEGY=canary``: a share of the invocations on the new version, alarms watched (:mod:`release.canary`)."""
    result = canary_model_layer(
        settings, args.zip, CanaryPlan(args.percent, args.minutes, args.poll_s), clients=clients
    )
    print(f"{'already published as' if result.layer.reused else 'published'} {result.layer.layer_arn}")
    for line in result.lines:
        print(line)
    if result.release is not None:
        _print_release(result.release)
    if result.outcome == "rolled back":
        raise ReleaseError(
            f"canary of {result.layer.layer_arn} rolled back: {result.alarm.name if result.alarm else 'an alarm'} "
            f"fired; {settings.function.name}:{settings.function.alias} still serves version {result.from_version}"
        )


#: ``make publish-model-layer STRATEGY=...``: how a model layer release moves traffic, by name.
STRATEGIES: dict[str, Callable[[argparse.Namespace, Settings, Clients], None]] = {
    "all-at-once": publish_all_at_once,
    "canary": publish_canary,
    "shadow": publish_in_shadow,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release", description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, help="settings file (default: $DEPLOY_SETTINGS or deploy.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("publish-deps-layer", help="publish the dependencies layer zip")
    p.add_argument("--zip", type=Path, default=DEFAULT_DEPS_ZIP)
    p = sub.add_parser("publish-model-layer", help="publish the model layer zip and release it")
    p.add_argument("--zip", type=Path, default=DEFAULT_MODEL_ZIP)
    p.add_argument("--function-zip", type=Path, default=DEFAULT_FUNCTION_ZIP, help="for the 250 MB unzipped check")
    p.add_argument("--deps-zip", type=Path, default=DEFAULT_DEPS_ZIP, help="for the 250 MB unzipped check")
    p.add_argument(
        "--strategy", choices=sorted(STRATEGIES), default="all-at-once", help="how the release moves traffic"
    )
    p.add_argument("--percent", type=float, default=10.0, help="canary: share of invocations on the new version")
    p.add_argument("--minutes", type=float, default=30.0, help="canary: minutes the alarms are watched")
    p.add_argument("--poll-s", type=float, default=DEFAULT_POLL_S, help="canary: seconds between reads of the alarms")
    p.add_argument("--candidate-zip", type=Path, default=DEFAULT_CANDIDATE_ZIP, help="the candidate layer (shadow)")
    sub.add_parser("promote", help="release the candidate in shadow as the live model, detaching it")
    sub.add_parser("reject", help="detach the candidate in shadow")
    p = sub.add_parser("relink", help="switch the model layer to exactly this layer version")
    p.add_argument("--layer-arn", required=True)
    sub.add_parser("rollback", help="relink to the previously live model layer")
    sub.add_parser("releases", help="list model layer versions, marking the live one")
    p = sub.add_parser("deploy", help="create or update the function, alias and event source mappings")
    p.add_argument("--function-zip", type=Path, default=DEFAULT_FUNCTION_ZIP)
    p.add_argument("--deps-layer-arn", help="default: newest dependencies layer version")
    p.add_argument("--model-layer-arn", help="default: the model layer the alias serves, else the newest")
    sub.add_parser("abort", help="undo an unfinished release: alias, $LATEST and versions back to where it started")
    return parser


def _target(args: argparse.Namespace) -> str | None:
    """What the command releases, for the journal."""
    for name in ("layer_arn", "zip", "function_zip"):
        if getattr(args, name, None) is not None:
            return str(getattr(args, name))
    return None


def rerun_command(args: argparse.Namespace) -> str:
    """The make command that runs ``args`` again."""
    make = f"make {MAKE_TARGETS.get(args.command, args.command)}"
    if args.command == "relink":
        make += f" LAYER_ARN={args.layer_arn}"
    if args.command == "publish-model-layer" and args.strategy == "canary":
        make += f" STRATEGY=canary PERCENT={args.percent:g} MINUTES={args.minutes:g}"
    elif args.command == "publish-model-layer" and args.strategy != "all-at-once":
        make += f" STRATEGY={args.strategy}"
    return make


def _run(args: argparse.Namespace, settings: Settings, clients: Clients) -> None:
    if args.command == "publish-deps-layer":
        result = publish_deps_layer(settings, args.zip, clients=clients)
        print(f"{'already published as' if result.reused else 'published'} {result.layer_arn}")
        print("attach it with `make deploy` (it attaches the newest dependencies layer version)")
    elif args.command == "publish-model-layer":
        STRATEGIES[args.strategy](args, settings, clients)
    elif args.command in ("promote", "reject"):
        _print_release((promote if args.command == "promote" else reject)(settings, clients=clients))
    elif args.command == "relink":
        _print_release(relink(settings, args.layer_arn, clients=clients))
    elif args.command == "rollback":
        _print_release(rollback(settings, clients=clients))
    elif args.command == "releases":
        print(format_listing(releases(settings, clients=clients), settings))
    elif args.command == "abort":
        for line in abort(settings, clients, undo_alarms(settings, clients)):  # a canary's alarms go with it
            print(line)
    elif args.command == "deploy":
        deployed = deploy(settings, args.function_zip, args.deps_layer_arn, args.model_layer_arn, clients=clients)
        for line in deployed.function_changes + deployed.mapping_changes:
            print(f"  {line}")
        for line in deployed.warnings:
            print(f"warning: {line}", file=sys.stderr)
        if deployed.version:
            print(f"{settings.function.name}:{settings.function.alias} -> version {deployed.version}")
        if not deployed.changed:
            print(f"{settings.function.name} is up to date; nothing changed")


def main(argv: list[str] | None = None, clients: Clients | None = None) -> int:
    """Command line entry point; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Default: ``sys.argv[1:]``.
    clients : Clients, optional
        Default: clients from the usual boto3 session.

    Returns
    -------
    int
        0 on success, 2 when a check or the settings refuse, 1 when AWS refuses.
    """
    args = _parser().parse_args(argv)

    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    settings: Settings | None = None
    intent: str | None = None
    log = clients.log if clients is not None else CallLog()
    status, error = 0, None
    try:
        settings = load_settings(args.settings)
        if args.command != "releases":
            intent = write_intent(settings.history.file, args.command, _target(args), settings.function.name)
        clients = clients or Clients.from_session()
        log = clients.log
        _run(args, settings, clients)
    except (ReleaseError, SettingsError) as exc:
        status, error = 2, f"{args.command}: {exc}"
    except NoRegionError:
        status, error = (
            2,
            f"{args.command}: no AWS region configured; set AWS_DEFAULT_REGION, or region in your AWS profile",
        )
    except NoCredentialsError:
        status, error = 2, f"{args.command}: no AWS credentials found; set AWS_PROFILE or run `aws configure`"
    except (ClientError, BotoCoreError) as exc:
        status, error = 1, failure_message(args.command, exc, log, rerun_command(args))
    except KeyboardInterrupt:
        status = 130
        error = f"{args.command}: interrupted during {log.last or 'its start'}; " + (
            f"the release is unfinished: `make releases` shows what AWS holds; run `{rerun_command(args)}` "
            "again to finish it, or `make release-abort` to undo it"
            if log.function_changed()
            else "nothing on the function was changed"
        )
    if error:
        print(error, file=sys.stderr)
    if settings is not None and intent is not None:
        result = {0: "ok", 130: "interrupted"}.get(status, "failed")
        write_outcome(
            settings.history.file,
            intent,
            result,
            error=error,
            last_call=log.last,
            function_changed=log.function_changed(),
        )
    return status

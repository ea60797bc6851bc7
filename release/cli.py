"""Publish layers, release model versions, relink and roll back, deploy: against AWS Lambda.

Usage (``make`` wraps each and sets ``PYTHONPATH=function:.``; settings come from
``deploy.toml``, see ``release.settings``)::

    python -m release publish-deps-layer  [--zip build/layers/deps-layer.zip]
    python -m release publish-model-layer [--zip build/layers/model-layer.zip]
    python -m release relink --layer-arn arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N
    python -m release rollback
    python -m release releases
    python -m release deploy [--function-zip build/function.zip]
                                   [--deps-layer-arn ARN] [--model-layer-arn ARN]

Credentials and region come from boto3's usual chain (``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, ``~/.aws/config``, an SSO or instance role).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from release.aws import Clients
from release.deploy import DEFAULT_FUNCTION_ZIP, deploy
from release.errors import ReleaseError
from release.history import Release
from release.publish import DEFAULT_DEPS_ZIP, DEFAULT_MODEL_ZIP, publish_deps_layer, publish_model_layer
from release.relink import format_releases, releases, relink, rollback
from release.settings import SettingsError, load_settings


def _print_release(release: Release) -> None:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release", description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, help="settings file (default: $DEPLOY_SETTINGS or deploy.toml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("publish-deps-layer", help="publish the dependencies layer zip")
    p.add_argument("--zip", type=Path, default=DEFAULT_DEPS_ZIP)
    p = sub.add_parser("publish-model-layer", help="publish the model layer zip and release it")
    p.add_argument("--zip", type=Path, default=DEFAULT_MODEL_ZIP)
    p = sub.add_parser("relink", help="switch the model layer to exactly this layer version")
    p.add_argument("--layer-arn", required=True)
    sub.add_parser("rollback", help="relink to the previously live model layer")
    sub.add_parser("releases", help="list model layer versions, marking the live one")
    p = sub.add_parser("deploy", help="create or update the function, alias and event source mappings")
    p.add_argument("--function-zip", type=Path, default=DEFAULT_FUNCTION_ZIP)
    p.add_argument("--deps-layer-arn", help="default: newest dependencies layer version")
    p.add_argument("--model-layer-arn", help="default: the model layer the function has, else the newest")
    return parser


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

    try:
        settings = load_settings(args.settings)
        clients = clients or Clients.from_session()
        if args.command == "publish-deps-layer":
            result = publish_deps_layer(settings, args.zip, clients=clients)
            print(f"{'already published as' if result.reused else 'published'} {result.layer_arn}")
            print("attach it with `make deploy` (it attaches the newest dependencies layer version)")
        elif args.command == "publish-model-layer":
            result = publish_model_layer(settings, args.zip, clients=clients)
            print(f"{'already published as' if result.reused else 'published'} {result.layer_arn}")
            if result.release is None:
                print(f"function {settings.function.name} does not exist yet: `make deploy` attaches this layer")
            else:
                _print_release(result.release)
        elif args.command == "relink":
            _print_release(relink(settings, args.layer_arn, clients=clients))
        elif args.command == "rollback":
            _print_release(rollback(settings, clients=clients))
        elif args.command == "releases":
            print(format_releases(releases(settings, clients=clients)))
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
    except (ReleaseError, SettingsError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    except NoRegionError:
        print(
            f"{args.command}: no AWS region configured; set AWS_DEFAULT_REGION, or region in your AWS profile",
            file=sys.stderr,
        )
        return 2
    except NoCredentialsError:
        print(f"{args.command}: no AWS credentials found; set AWS_PROFILE or run `aws configure`", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"{args.command}: AWS refused: {exc}", file=sys.stderr)
        return 1
    return 0

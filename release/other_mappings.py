"""Event source mappings of the function's streams that ``make deploy`` does not manage, found before it changes anything.

``make deploy`` manages one mapping per ``[[event_sources]]`` entry, on the alias. A second mapping
from the same stream to the same function, on ``$LATEST``, the unqualified function, a version or
another alias (made by ``sam deploy`` of ``template.yaml``, in the console, by hand), delivers every
record a second time: both mappings read the whole stream. Lambda keeps no link between them, so
they are found by listing twice (docs/aws-notes.md §2):

* by ``EventSourceArn`` (every function the stream feeds), for each configured stream and, for an
  enhanced fan-out consumer, for the consumer too;
* by ``FunctionName`` without a qualifier (every mapping of the function), which also finds a
  mapping that reads the same stream through a consumer ARN (or the stream directly, when
  ``deploy.toml`` names a consumer).

A mapping counts as the function's when its ``FunctionArn`` names the function, with any
qualifier or none; it counts as the managed one when it is listed for the alias's ARN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from release.aws import paginate
from release.errors import ReleaseError
from release.settings import Settings, stream_of


@dataclass(frozen=True)
class OtherMapping:
    """A mapping from a configured stream to the function that is not the one on the alias."""

    uuid: str
    event_source_arn: str
    function_arn: str
    state: str

    @property
    def qualifier(self) -> str:
        """``$LATEST`` for the unqualified function, else the version or alias the mapping invokes."""
        parts = self.function_arn.split(":")
        return parts[7] if len(parts) > 7 else "$LATEST"


def _function_name(function_arn: str) -> str:
    parts = function_arn.split(":")
    return parts[6] if len(parts) > 6 else function_arn


def other_mappings(settings: Settings, lam: Any, alias_arn: str) -> list[OtherMapping]:
    """Mappings from the configured streams to the function on anything but the alias (module docstring).

    Parameters
    ----------
    settings : Settings
    lam : botocore client
    alias_arn : str
        ``arn:aws:lambda:REGION:ACCOUNT:function:NAME:ALIAS``, the mappings ``make deploy`` manages.

    Returns
    -------
    list of OtherMapping
        In the order listed, each once.
    """
    name = settings.function.name
    streams = {source.stream_arn for source in settings.event_sources}
    listed: dict[str, dict[str, Any]] = {}
    managed: set[str] = set()
    for source in settings.event_sources:
        for arn in dict.fromkeys((source.source_arn, source.stream_arn)):
            for mapping in paginate(lam, "list_event_source_mappings", "EventSourceMappings", EventSourceArn=arn):
                listed.setdefault(mapping["UUID"], mapping)
            managed |= {
                m["UUID"]
                for m in paginate(
                    lam, "list_event_source_mappings", "EventSourceMappings", EventSourceArn=arn, FunctionName=alias_arn
                )
            }
    for mapping in paginate(lam, "list_event_source_mappings", "EventSourceMappings", FunctionName=name):
        listed.setdefault(mapping["UUID"], mapping)
    return [
        OtherMapping(uuid, str(m.get("EventSourceArn", "")), str(m.get("FunctionArn", "")), str(m.get("State", "?")))
        for uuid, m in listed.items()
        if uuid not in managed
        and _function_name(str(m.get("FunctionArn", ""))) == name
        and stream_of(str(m.get("EventSourceArn", ""))) in streams
    ]


def refuse_other_mappings(settings: Settings, lam: Any, alias_arn: str) -> None:
    """Refuse to deploy while a configured stream also feeds the function through another mapping.

    Raises
    ------
    ReleaseError
        Naming each such mapping (UUID, stream, qualifier), why it matters and how to remove it.
    """
    found = other_mappings(settings, lam, alias_arn)
    if not found:
        return
    lines = [
        f"mapping {m.uuid} ({m.state}) reads {m.event_source_arn} into {settings.function.name} on {m.qualifier}"
        for m in found
    ]
    raise ReleaseError(
        "refusing to deploy: the streams in deploy.toml already feed the function through mappings that do not "
        f"invoke the alias {alias_arn.rsplit(':', 1)[-1]}, so every record would be processed twice (once per "
        "mapping); nothing was changed.\n  "
        + "\n  ".join(lines)
        + "\n  Delete each (`aws lambda delete-event-source-mapping --uuid UUID`; if `sam deploy` of template.yaml "
        "made it, release with sam instead of make deploy, or delete that stack's mapping), then run `make deploy`"
    )

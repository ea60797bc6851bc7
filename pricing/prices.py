"""Dated, cited price tables: Lambda (x86_64, arm64; on demand, SnapStart, provisioned concurrency), its free
tier, SageMaker real-time endpoints and SageMaker Serverless Inference.

Every number says where it comes from and when. This machine has no internet, so
nothing here was fetched; two kinds of source are used, and each entry names its own:

``docs/aws-notes.md §5``
    The project's field notes (docs/aws-notes.md §5, "Pricing (us-east-1; check the
    AWS pricing page)"), which quote https://aws.amazon.com/lambda/pricing/. The Lambda
    GB-second and request prices, the 1 ms billing step and the free tier come from there,
    as does the classic 2019 study (3.8 s at 192 MB, $0.62 / $0.062 / $0.0062 per
    50,000-record ingest, an ml.t2.medium endpoint at ~$50/month).
``author's knowledge``
    The SageMaker real-time instance prices: what the author knows of
    https://aws.amazon.com/sagemaker/pricing/ (on-demand real-time inference, us-east-1,
    as published in 2024). NOT re-checked on 2026-11-21 (no internet here): check the
    page before quoting a break-even from them. ``--endpoint-price`` style overrides are
    a matter of passing another :class:`EndpointPrice`. The same holds for Lambda's
    provisioned-concurrency prices, SageMaker Serverless Inference and SageMaker's data
    processing charge (the author's knowledge of the pricing pages, 2024-2025, not re-checked).
``stored copy, not checked``
    Lambda SnapStart's Python/.NET charges (cache per GB-second, restore per GB): the
    figures a stored third-party page (awsnegotiations.com, "Lambda SnapStart Cost Impact",
    May 2026) quotes from the Lambda pricing page, matching what the author knows of it;
    docs/aws-notes.md §3 and §5 say only that the charges exist. Check the page.

All prices are us-east-1, in USD. Lambda's volume tiers (lower GB-second prices past 6
billion GB-s a month on x86_64) are ignored: they start far above anything here.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The date this table was assembled (and the date "not re-checked" refers to).
TABLE_DATE = "2026-11-21"
#: Hours in a month as AWS prices always-on resources (8,760 h / 12).
HOURS_PER_MONTH = 730.0
#: Days in that month (730 / 24); ingests per day x this = ingests per month.
DAYS_PER_MONTH = HOURS_PER_MONTH / 24.0
#: The size of an "ingest" in the classic study and in our tables.
INGEST_RECORDS = 50_000

LAMBDA_PRICING_URL = "https://aws.amazon.com/lambda/pricing/"
SAGEMAKER_PRICING_URL = "https://aws.amazon.com/sagemaker/pricing/"
FROM_REFERENCE = f"{LAMBDA_PRICING_URL} (checked: the figure docs/aws-notes.md §5 gives; read {TABLE_DATE})"
FROM_KNOWLEDGE = f"{SAGEMAKER_PRICING_URL} NOT checked: the author's knowledge of 2024 prices, not in docs/aws-notes.md ({TABLE_DATE})"
#: The date the SnapStart, provisioned-concurrency and SageMaker Serverless rows were added.
OPTIONS_DATE = "2026-12-03"
LAMBDA_KNOWLEDGE = (
    f"{LAMBDA_PRICING_URL} NOT checked: the author's knowledge of the page (2024-2025), not in docs/aws-notes.md "
    f"({OPTIONS_DATE})"
)
SNAPSTART_SOURCE = (
    f"{LAMBDA_PRICING_URL} as quoted by a stored copy of awsnegotiations.com/blog/lambda-snapstart-cost-impact "
    f"(May 2026); NOT checked against AWS ({OPTIONS_DATE})"
)
SAGEMAKER_KNOWLEDGE = (
    f"{SAGEMAKER_PRICING_URL} NOT checked: the author's knowledge of the page (2024-2025); ml.t3.medium at $0.05/h "
    f"also quoted by a stored copy of wring.co (March 2026) ({OPTIONS_DATE})"
)


@dataclass(frozen=True)
class LambdaPrice:
    """On-demand Lambda prices for one architecture.

    Attributes
    ----------
    architecture : str
        ``x86_64`` or ``arm64``.
    per_gb_second : float
        USD per GB-second of billed duration (memory in GB = MB / 1024).
    per_request : float
        USD per invocation.
    billing_step_ms : int
        Billed duration is rounded up to a multiple of this.
    source : str
        Where the numbers come from, with the date.
    """

    architecture: str
    per_gb_second: float
    per_request: float
    billing_step_ms: int
    source: str


@dataclass(frozen=True)
class FreeTier:
    """Lambda's monthly free tier (per account, shared by both architectures)."""

    requests: float
    gb_seconds: float
    source: str


@dataclass(frozen=True)
class EndpointPrice:
    """An always-on SageMaker real-time inference instance."""

    instance: str
    per_hour: float
    vcpus: int
    memory_gib: float
    source: str

    #: False for families SageMaker refuses for new endpoints (T2; docs/aws-notes.md §5): kept for the classic study.
    creatable: bool = True

    @property
    def per_month(self) -> float:
        """USD for one instance running all month (730 h)."""
        return self.per_hour * HOURS_PER_MONTH


@dataclass(frozen=True)
class SnapStartPrice:
    """Lambda SnapStart's charges for Python (and .NET) functions, on top of requests and duration.

    Attributes
    ----------
    cache_per_gb_second : float
        USD per GB-second a published version's snapshot is cached (memory size in GB; the version is
        cached while it is active, at least ``cache_minimum_s`` per version).
    restore_per_gb : float
        USD per GB restored: each new execution environment restored from the snapshot (memory size in GB).
    """

    cache_per_gb_second: float
    restore_per_gb: float
    cache_minimum_s: float
    source: str


@dataclass(frozen=True)
class ProvisionedConcurrencyPrice:
    """Lambda provisioned concurrency for one architecture: a price per GB-second configured, and a lower
    duration price for invocations it serves (requests cost the same as on demand)."""

    architecture: str
    per_gb_second_configured: float
    per_gb_second_duration: float
    source: str


@dataclass(frozen=True)
class ServerlessInferencePrice:
    """SageMaker Serverless Inference: compute per GB-second of the memory size configured (1-6 GB in 1 GB
    steps) while a request is processed, plus data processed in and out."""

    per_gb_second: float
    memory_sizes_gb: tuple[int, ...]
    max_payload_bytes: int
    source: str


@dataclass(frozen=True)
class ClassicStudy:
    """The classic (2019) reference figures, docs/aws-notes.md §5."""

    year: int
    memory_mb: int
    duration_ms: float
    billing_step_ms: int
    cost_per_ingest: dict[int, float]
    endpoint_instance: str
    endpoint_per_month: float
    source: str


LAMBDA_PRICES: dict[str, LambdaPrice] = {
    "x86_64": LambdaPrice("x86_64", 0.0000166667, 0.20 / 1_000_000, 1, FROM_REFERENCE),
    "arm64": LambdaPrice("arm64", 0.0000133334, 0.20 / 1_000_000, 1, FROM_REFERENCE),
}
ARCHITECTURES = tuple(LAMBDA_PRICES)

FREE_TIER = FreeTier(requests=1_000_000, gb_seconds=400_000, source=FROM_REFERENCE)

ENDPOINT_PRICES: dict[str, EndpointPrice] = {
    "ml.t2.medium": EndpointPrice("ml.t2.medium", 0.056, 2, 4, FROM_KNOWLEDGE, creatable=False),
    "ml.t3.medium": EndpointPrice("ml.t3.medium", 0.050, 2, 4, SAGEMAKER_KNOWLEDGE),
    "ml.m5.large": EndpointPrice("ml.m5.large", 0.115, 2, 8, FROM_KNOWLEDGE),
    "ml.c6i.large": EndpointPrice("ml.c6i.large", 0.102, 2, 4, SAGEMAKER_KNOWLEDGE),
    "ml.m6i.large": EndpointPrice("ml.m6i.large", 0.115, 2, 8, SAGEMAKER_KNOWLEDGE),
}
#: The endpoints SageMaker creates today (the comparison users make; T2 is refused for new endpoints).
CREATABLE_ENDPOINTS = tuple(name for name, e in ENDPOINT_PRICES.items() if e.creatable)
#: The always-on endpoint the headline break-even is quoted against: the cheapest creatable one.
REFERENCE_ENDPOINT = min(CREATABLE_ENDPOINTS, key=lambda name: ENDPOINT_PRICES[name].per_hour)

SNAPSTART = SnapStartPrice(
    cache_per_gb_second=0.0000015046, restore_per_gb=0.0001397998, cache_minimum_s=3 * 3600, source=SNAPSTART_SOURCE
)
PROVISIONED_CONCURRENCY: dict[str, ProvisionedConcurrencyPrice] = {
    "x86_64": ProvisionedConcurrencyPrice("x86_64", 0.0000041667, 0.0000097222, LAMBDA_KNOWLEDGE),
    "arm64": ProvisionedConcurrencyPrice("arm64", 0.0000033334, 0.0000077778, LAMBDA_KNOWLEDGE),
}
SERVERLESS_INFERENCE = ServerlessInferencePrice(
    per_gb_second=0.00002,
    memory_sizes_gb=(1, 2, 3, 4, 5, 6),
    max_payload_bytes=4 * 1024 * 1024,
    source=SAGEMAKER_KNOWLEDGE,
)
#: SageMaker's data processing charge, per GB in and per GB out (real-time and serverless endpoints).
SAGEMAKER_DATA_PER_GB = 0.016

CLASSIC = ClassicStudy(
    year=2019,
    memory_mb=192,
    duration_ms=3800.0,
    billing_step_ms=100,
    cost_per_ingest={1: 0.62, 10: 0.062, 100: 0.0062},
    endpoint_instance="ml.t2.medium",
    endpoint_per_month=50.0,
    source="docs/aws-notes.md §5 (the classic 2019 study: model loaded in every invocation)",
)
#: The goal: an ingest at batch size 100 and the classic memory size at least this many times cheaper.
CLASSIC_TARGET_RATIO = 20.0


def price_table_rows() -> list[dict[str, str]]:
    """Every price as table rows (item, price, unit, source), for the report."""
    rows = []
    for price in LAMBDA_PRICES.values():
        rows.append(
            {
                "item": f"Lambda {price.architecture} duration",
                "price": f"${price.per_gb_second:.10f}",
                "unit": f"per GB-second, billed in {price.billing_step_ms} ms steps",
                "source": price.source,
            }
        )
        rows.append(
            {
                "item": f"Lambda {price.architecture} requests",
                "price": f"${price.per_request * 1e6:.2f}",
                "unit": "per million requests",
                "source": price.source,
            }
        )
    rows.append(
        {
            "item": "Lambda free tier",
            "price": f"{FREE_TIER.requests:,.0f} requests + {FREE_TIER.gb_seconds:,.0f} GB-s",
            "unit": "per month, per account (both architectures)",
            "source": FREE_TIER.source,
        }
    )
    rows += [
        {
            "item": "Lambda SnapStart cache (Python)",
            "price": f"${SNAPSTART.cache_per_gb_second:.10f}",
            "unit": f"per GB-second a version's snapshot is cached (at least {SNAPSTART.cache_minimum_s / 3600:g} h)",
            "source": SNAPSTART.source,
        },
        {
            "item": "Lambda SnapStart restore (Python)",
            "price": f"${SNAPSTART.restore_per_gb:.10f}",
            "unit": "per GB restored (each environment restored from the snapshot)",
            "source": SNAPSTART.source,
        },
    ]
    for pc in PROVISIONED_CONCURRENCY.values():
        rows.append(
            {
                "item": f"Lambda {pc.architecture} provisioned concurrency",
                "price": f"${pc.per_gb_second_configured:.10f} + ${pc.per_gb_second_duration:.10f}",
                "unit": "per GB-second configured + per GB-second of duration served",
                "source": pc.source,
            }
        )
    rows += [
        {
            "item": "SageMaker Serverless Inference",
            "price": f"${SERVERLESS_INFERENCE.per_gb_second:.7f}",
            "unit": f"per GB-second of processing ({', '.join(map(str, SERVERLESS_INFERENCE.memory_sizes_gb))} GB)",
            "source": SERVERLESS_INFERENCE.source,
        },
        {
            "item": "SageMaker data processing",
            "price": f"${SAGEMAKER_DATA_PER_GB:.3f}",
            "unit": "per GB in and per GB out (real-time and serverless)",
            "source": SAGEMAKER_KNOWLEDGE,
        },
    ]
    for endpoint in ENDPOINT_PRICES.values():
        refused = "" if endpoint.creatable else ", refused for new endpoints: classic study only"
        rows.append(
            {
                "item": f"SageMaker real-time {endpoint.instance} ({endpoint.vcpus} vCPU, {endpoint.memory_gib:g} GiB{refused})",
                "price": f"${endpoint.per_hour:.3f}/h = ${endpoint.per_month:.2f}/month",
                "unit": f"per instance, always on ({HOURS_PER_MONTH:.0f} h/month)",
                "source": endpoint.source,
            }
        )
    rows.append(
        {
            "item": f"classic study ({CLASSIC.year}) {CLASSIC.endpoint_instance}",
            "price": f"~${CLASSIC.endpoint_per_month:.0f}/month",
            "unit": "as quoted then",
            "source": CLASSIC.source,
        }
    )
    return rows

"""Dated, cited price tables: Lambda (x86_64, arm64), its free tier, SageMaker endpoints.

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
    a matter of passing another :class:`EndpointPrice`.

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

    @property
    def per_month(self) -> float:
        """USD for one instance running all month (730 h)."""
        return self.per_hour * HOURS_PER_MONTH


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
    "ml.t2.medium": EndpointPrice("ml.t2.medium", 0.056, 2, 4, FROM_KNOWLEDGE),
    "ml.t3.medium": EndpointPrice("ml.t3.medium", 0.050, 2, 4, FROM_KNOWLEDGE),
    "ml.m5.large": EndpointPrice("ml.m5.large", 0.115, 2, 8, FROM_KNOWLEDGE),
}

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
    for endpoint in ENDPOINT_PRICES.values():
        rows.append(
            {
                "item": f"SageMaker real-time {endpoint.instance} ({endpoint.vcpus} vCPU, {endpoint.memory_gib:g} GiB)",
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

"""The shadow report's plot (matplotlib, Agg backend: no display needed).

Left: each model's count per label (classifiers, outlier detectors, clusterers), or, for a
regressor, the candidate's value against the live one per record. Right: the distribution of
each model's scores (a classifier's winning-class probability, an outlier detector's score, a
regressor's value), when there are any.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from inference.shadow import Comparison

    from rollout.compare import ShadowResults

DPI = 120


def plot_comparison(results: ShadowResults, comparison: Comparison, out: Path) -> Path:
    """Write the plot to ``out`` (a PNG); returns ``out``."""
    from inference.shadow import SCORE_FIELD

    panels = 2 if comparison.live_scores and comparison.candidate_scores else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.2), squeeze=False)
    left = axes[0][0]
    if comparison.agreed is not None:
        labels = sorted(comparison.live_labels.keys() | comparison.candidate_labels.keys())
        xs = range(len(labels))
        left.bar(
            [x - 0.2 for x in xs], [comparison.live_labels[k] for k in labels], 0.4, label=f"live {results.live_model}"
        )
        left.bar(
            [x + 0.2 for x in xs],
            [comparison.candidate_labels[k] for k in labels],
            0.4,
            label=f"candidate {results.candidate_model}",
        )
        left.set_xticks(list(xs), labels)
        left.set_ylabel("records")
        agreement = f"{comparison.agreement:.1%}" if comparison.agreement is not None else "n/a"
        left.set_title(f"labels: agreement {agreement} of {comparison.records:,}")
        left.legend(fontsize="small")
    else:
        left.scatter(comparison.live_scores, comparison.candidate_scores, s=4, alpha=0.5)
        low = min(comparison.live_scores + comparison.candidate_scores, default=0.0)
        high = max(comparison.live_scores + comparison.candidate_scores, default=1.0)
        left.plot([low, high], [low, high], color="grey", linewidth=0.8)
        left.set_xlabel(f"live ({results.live_model})")
        left.set_ylabel(f"candidate ({results.candidate_model})")
        left.set_title(f"values: mean |diff| {comparison.mean_abs_diff or 0:.4g}")
    if panels == 2:
        right = axes[0][1]
        bins = 30
        right.hist(comparison.live_scores, bins=bins, alpha=0.6, label=f"live {results.live_model}")
        right.hist(comparison.candidate_scores, bins=bins, alpha=0.6, label=f"candidate {results.candidate_model}")
        right.set_xlabel(SCORE_FIELD.get(results.task, "score"))
        right.set_ylabel("records")
        right.set_title("score distribution")
        right.legend(fontsize="small")
    fig.suptitle("shadow: candidate beside the live model")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out

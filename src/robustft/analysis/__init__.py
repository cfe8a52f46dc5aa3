"""Analysis of finished runs: Pareto frontiers and paper A's comparisons, training-dynamics diagnostics (onset, peak,
transfer), statistics and findings."""

from robustft.analysis.findings import Finding, findings
from robustft.analysis.pareto import pareto_area, pareto_front
from robustft.analysis.seed_stats import attainment_band, paired_ttest, run_summaries, schedule_table, seed_table
from robustft.analysis.tradeoff import (
    Comparison,
    ThreatModel,
    attack_settings,
    compare_runs,
    frontier_table,
    ood_correlation,
    ood_pairs,
    percent_above_average,
    tracked_threats,
    tradeoff_points,
)

__all__ = [
    "Comparison", "Finding", "ThreatModel", "attack_settings", "attainment_band", "compare_runs", "findings",
    "frontier_table", "ood_correlation", "ood_pairs", "paired_ttest", "pareto_area", "pareto_front",
    "percent_above_average", "run_summaries", "schedule_table", "seed_table", "tracked_threats", "tradeoff_points",
]

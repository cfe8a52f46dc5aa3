"""Analysis of finished runs: Pareto frontiers and paper A's comparisons, training-dynamics diagnostics (onset, peak,
transfer), statistics (unpaired, paired on the same images, simultaneous for picked contrasts) and findings."""

from robustft.analysis.findings import Finding, findings
from robustft.analysis.paired import align_outcomes, mcnemar_exact, paired_difference
from robustft.analysis.paired_bootstrap import paired_bootstrap, two_level_bootstrap
from robustft.analysis.pareto import pareto_area, pareto_areas, pareto_front
from robustft.analysis.seed_stats import attainment_band, paired_ttest, run_summaries, schedule_table, seed_table
from robustft.analysis.simultaneous import interval_of_max, interval_of_min
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
    "Comparison", "Finding", "ThreatModel", "align_outcomes", "attack_settings", "attainment_band", "compare_runs",
    "findings", "frontier_table", "interval_of_max", "interval_of_min", "mcnemar_exact", "ood_correlation",
    "ood_pairs", "paired_bootstrap", "paired_difference", "paired_ttest", "pareto_area", "pareto_areas",
    "pareto_front", "percent_above_average", "run_summaries", "schedule_table", "seed_table", "tracked_threats",
    "tradeoff_points", "two_level_bootstrap",
]

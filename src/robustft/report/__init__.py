"""Reports: figures and one self-contained HTML page over one or many runs (``robustft.runs.load_runs``)."""

from robustft.report.html import build_report

__all__ = ["build_report"]

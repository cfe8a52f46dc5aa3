"""Reports: figures and one self-contained HTML page over one or many run directories."""

from robustft.report.html import RunRecord, build_report

__all__ = ["RunRecord", "build_report"]

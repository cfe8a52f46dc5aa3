"""robustft.report (being built)."""

"""robustft.strategies (being built)."""

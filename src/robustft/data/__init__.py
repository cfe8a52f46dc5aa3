"""robustft.data (being built)."""

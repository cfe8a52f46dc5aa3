"""robustft.models (being built)."""

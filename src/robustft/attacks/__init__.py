"""robustft.attacks (being built)."""

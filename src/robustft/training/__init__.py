"""Pieces of the trainer that would make ``robustft.train`` long: optimiser groups, resumable state, loggers."""

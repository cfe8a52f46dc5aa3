"""The strategy registry (its own module so strategy modules can import it without a cycle)."""

from __future__ import annotations

from robustft.registry import Registry

STRATEGIES: Registry = Registry("strategy")

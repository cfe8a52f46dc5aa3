import pytest

from robustft.errors import RobustftError, UnknownNameError
from robustft.registry import Registry


def make_registry() -> Registry:
    registry: Registry = Registry("strategy")

    @registry.register("lora")
    def lora():
        """Low-rank updates.

        More text."""

    registry.add("linear", object(), "head only")
    return registry


def test_register_get_and_describe():
    registry = make_registry()
    assert registry.names() == ["linear", "lora"]
    assert registry.entry("lora").description == "Low-rank updates."
    assert registry.entry("linear").description == "head only"
    assert "lora" in registry and len(registry) == 2


def test_unknown_name_lists_close_matches_and_all_names():
    registry = make_registry()
    with pytest.raises(UnknownNameError) as info:
        registry.get("lorra")
    message = str(info.value)
    assert "Did you mean 'lora'" in message
    assert "linear, lora" in message
    assert isinstance(info.value, RobustftError)


def test_duplicate_registration_is_refused():
    registry = make_registry()
    with pytest.raises(ValueError):
        registry.add("lora", object())

"""Experiment configuration: the typed tree, YAML files with includes and dotted overrides, coercion, validation and
eps units."""

from robustft.config.attack_spec import AttackSpec
from robustft.config.coerce import format_eps_exact, parse_eps_text, unknown_key_message
from robustft.config.files import apply_overrides, load_config
from robustft.config.merge import merge_trees
from robustft.config.presets import ATTACK_PRESETS, PRESETS
from robustft.config.schema import Config, dump_yaml, from_dict, section_from_dict, to_dict

__all__ = [
    "ATTACK_PRESETS", "AttackSpec", "Config", "PRESETS", "apply_overrides", "dump_yaml", "format_eps_exact",
    "from_dict", "load_config", "merge_trees", "parse_eps_text", "section_from_dict", "to_dict", "unknown_key_message",
]

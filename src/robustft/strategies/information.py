"""Paper A's "type of information" axis, derived from which parameters a strategy trains.

Labels: ``head``, ``biases``, ``norms``, ``weights:attention``, ``weights:mlp``, ``weights:conv``,
``weights:embedding`` (patch/position embeddings, tokens), ``weights:other``. Strategies that add modules
(adapters, scales, prompts) state ``representations:*`` or ``input`` themselves.
"""

from __future__ import annotations

from robustft.models.layout import Layout

ORDER = ("weights:attention", "weights:mlp", "weights:conv", "weights:embedding", "weights:other", "biases",
         "norms", "representations:attention", "representations:mlp", "representations:conv", "input", "head")


def sort_labels(labels: set[str]) -> list[str]:
    """Labels in a stable, readable order."""
    return sorted(labels, key=lambda label: ORDER.index(label) if label in ORDER else len(ORDER))


def _inside(name: str, module: str) -> bool:
    return name.startswith(module + ".")


def describe_parameters(names: list[str], layout: Layout) -> list[str]:
    """The information labels of the parameters ``names`` (qualified names in the ``RobustModel``)."""
    attention = [b.attention.out.rsplit(".", 1)[0] for b in layout.blocks if b.attention is not None]
    mlp = [m.rsplit(".", 1)[0] for b in layout.blocks for m in (b.mlp_in, b.mlp_out) if m is not None]
    labels = set()
    for name in names:
        module = name.rsplit(".", 1)[0]
        if _inside(name, layout.head):
            labels.add("head")
        elif module in layout.norms:
            labels.add("norms")
        elif name.endswith("bias"):
            labels.add("biases")
        elif any(_inside(name, a) for a in attention):
            labels.add("weights:attention")
        elif any(_inside(name, m) for m in mlp):
            labels.add("weights:mlp")
        elif module in layout.convs and layout.family == "cnn":
            labels.add("weights:conv")
        elif layout.family == "vit" and ("embed" in name or "token" in name):
            labels.add("weights:embedding")
        else:
            labels.add("weights:other")
    return sort_labels(labels)

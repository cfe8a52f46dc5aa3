"""robustft: fine-tune pretrained vision models with any strategy x objective x perturbation schedule and
measure the accuracy / adversarial / out-of-distribution robustness trade-off continuously."""

__version__ = "0.1.0"

__all__ = ["__version__", "train"]


def __getattr__(name: str):
    # Lazy: ``import robustft`` stays light; ``robustft.train(...)`` imports torch and the trainer on first use.
    if name == "train":
        from robustft.train import train

        return train
    raise AttributeError(f"module 'robustft' has no attribute {name!r}")

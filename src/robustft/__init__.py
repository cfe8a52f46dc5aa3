"""robustft: fine-tune pretrained vision models with any strategy x objective x perturbation schedule and
measure the accuracy / adversarial / out-of-distribution robustness trade-off continuously."""

__version__ = "0.1.0"

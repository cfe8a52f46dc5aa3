"""Invariants of every registered strategy on every test architecture (parametrised over the registry, so a new
strategy is tested automatically): one AdamW step changes exactly the intended parameters, outputs are unchanged
at init, checkpoints round-trip, merging keeps the logits, and train_mode keeps frozen BatchNorm in eval."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from robustft.errors import ConfigError
from robustft.strategies import STRATEGIES, StrategyNotApplicableError, apply, merge, resolve_name
from robustft.strategies.hooks import attached
from test_strategies_archs import ARCHITECTURES, fresh

# every registered strategy with the options it needs (``example_options``), plus a second peft tuner
CASES = [*STRATEGIES.names(), "peft:ia3"]


def _adapt(arch: str, name: str):
    """(model, info), or None after checking the strategy refuses the architecture with a clear error."""
    model = fresh(arch)
    strategy, _ = resolve_name(name, {})
    family = "vit" if "vit" in arch else "cnn"
    if family not in strategy.families:
        with pytest.raises(StrategyNotApplicableError, match=f"needs a {strategy.families[0]} model"):
            apply(model, name, **({} if ":" in name else strategy.example_options))
        return None
    return model, apply(model, name, **({} if ":" in name else strategy.example_options))


def _batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def _perturb_trainable(model: torch.nn.Module, names: list[str]) -> None:
    """Moves trainable parameters off their init (LoRA B = 0, scales = 1) so deltas are non-trivial."""
    generator = torch.Generator().manual_seed(2)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in names:
            params[name].add_(0.05 * torch.randn(params[name].shape, generator=generator))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("name", CASES)
def test_one_adamw_step_changes_exactly_the_trainable_parameters(arch: str, name: str) -> None:
    adapted = _adapt(arch, name)
    if adapted is None:
        return
    model, info = adapted
    active = set(info.active_phase(0.0).trainable)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == active
    assert set(names_of_head(model)) <= active
    params = dict(model.named_parameters())
    optimizer = torch.optim.AdamW([params[n] for n in info.trainable_names], lr=1e-2, weight_decay=0.1)
    before = {n: p.detach().clone() for n, p in params.items()}
    buffers_before = {n: b.clone() for n, b in model.named_buffers()}
    info.train_mode(model)
    images, labels = _batch()
    F.cross_entropy(model(images), labels).backward()
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in params.items()}
    optimizer.step()
    for n, p in params.items():
        if n in active:
            assert grads[n] is not None, f"{n} trains but got no gradient"
            # AdamW leaves a parameter unchanged only when its gradient is 0 and decay has nothing to shrink
            expected = bool(grads[n].abs().sum() > 0 or before[n].abs().sum() > 0)
            assert (not torch.equal(p, before[n])) == expected, n
        else:
            assert grads[n] is None, f"frozen {n} got a gradient"
            assert p not in optimizer.state or not optimizer.state[p], f"frozen {n} has optimiser state"
            assert torch.equal(p, before[n]), f"frozen {n} changed"
    # BatchNorm statistics move only where the BatchNorm's scale (weight) trains: not under BitFit
    for module_name, module in model.named_modules():
        if isinstance(module, _BatchNorm) and module.running_mean is not None:
            trains = module.weight.requires_grad if module.weight is not None else False
            unchanged = torch.equal(module.running_mean, buffers_before[f"{module_name}.running_mean"])
            assert unchanged != trains, module_name


def names_of_head(model: torch.nn.Module) -> list[str]:
    return [n for n, _ in model.named_parameters() if n.startswith(model.info.head + ".")]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("name", CASES)
def test_outputs_at_init_equal_the_unadapted_model(arch: str, name: str) -> None:
    model = fresh(arch).eval()
    images, _ = _batch()
    with torch.no_grad():
        reference = model(images)
    adapted = _adapt(arch, name)
    if adapted is None:
        return
    model, _ = adapted
    with torch.no_grad():
        logits = model.eval()(images)
    if STRATEGIES.get(name.partition(":")[0]).identity_at_init:
        torch.testing.assert_close(logits, reference, atol=1e-6, rtol=0)
    else:  # prompts: the patch tokens attend to them from the start (documented in strategies/vpt.py)
        assert not torch.allclose(logits, reference, atol=1e-4)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("name", CASES)
def test_checkpoint_round_trip_gives_identical_logits(arch: str, name: str) -> None:
    adapted = _adapt(arch, name)
    if adapted is None:
        return
    model, info = adapted
    _perturb_trainable(model, [n for n, _ in model.named_parameters()])
    state = copy.deepcopy(model.state_dict())
    options = json.loads(json.dumps(info.options))  # the checkpoint stores them as plain values
    rebuilt_model = fresh(arch)
    rebuilt = apply(rebuilt_model, info.name, **options)
    rebuilt_model.load_state_dict(state, strict=True)
    assert rebuilt.trainable_names == info.trainable_names
    assert rebuilt.options == info.options
    images, _ = _batch()
    with torch.no_grad():
        assert torch.equal(rebuilt_model.eval()(images), model.eval()(images))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("name", CASES)
def test_merge_keeps_the_logits(arch: str, name: str) -> None:
    adapted = _adapt(arch, name)
    if adapted is None:
        return
    model, info = adapted
    _perturb_trainable(model, info.trainable_names)
    images, _ = _batch()
    model.eval()
    names_before = [n for n, _ in model.named_parameters()]
    with torch.no_grad():
        before = model(images)
        merge(model)
        after = model(images)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)
    if name in ("lora", "ia3"):  # folded into the weights: exactly the adapter parameters are gone
        adapter_names = {n for n in names_before if ".lora." in n or ".ia3_" in n}
        assert adapter_names
        assert [n for n, _ in model.named_parameters()] == [n for n in names_before if n not in adapter_names]


def test_a_strict_merge_refuses_only_modules_that_cannot_be_folded() -> None:
    """``merge(strict=True)`` is what ``export --merged`` runs: an adapter cannot be folded into existing weights,
    so the strict merge names the strategy; the default merge leaves it in place; LoRA merges either way."""
    images, _ = _batch()
    adapter, _ = _adapt("tiny_cnn", "adapter")
    with torch.no_grad():  # trained: at init the adapters are exact identities, which every merge drops
        for name, param in adapter.named_parameters():
            if name.endswith("adapter.up.bias"):
                param.fill_(1e-3)
    with pytest.raises(ConfigError, match="strategy 'adapter' adds modules .* cannot be merged"):
        merge(copy.deepcopy(adapter), strict=True)
    kept = merge(copy.deepcopy(adapter)).eval()
    with torch.no_grad():
        assert torch.equal(kept(images), adapter.eval()(images))
    assert attached(kept)  # still adapted: nothing to fold, nothing removed
    lora, _ = _adapt("tiny_cnn", "lora")
    assert merge(lora, strict=True) is lora and not attached(lora)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("name", CASES)
def test_train_mode_keeps_frozen_batchnorm_in_eval(arch: str, name: str) -> None:
    adapted = _adapt(arch, name)
    if adapted is None:
        return
    model, info = adapted
    info.train_mode(model)
    everything = all(p.requires_grad for p in model.parameters())
    for module_name, module in model.named_modules():
        if isinstance(module, _BatchNorm):
            # statistics follow the layer's scale (weight): BitFit's trained BatchNorm biases leave them frozen
            trains = module.weight.requires_grad if module.weight is not None else everything
            assert module.training == trains, module_name
        elif not list(module.children()) and not isinstance(module, _BatchNorm):
            assert module.training, module_name

"""Robust evaluation reuses what the attack computed: same verdicts sample by sample, no more passes than a plain loop.

A verdict is read from the logits the attack recorded when it saw the point it returns (attacks/record.py); these
tests hold it to an independent re-classification of the returned points (``recheck=True``) on two model families,
three attacks and several seeds, with clean-misclassified samples among them; and count forward passes (a hook on
the model, not a clock) against a plain loop doing the same work.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from robustft.attacks import Attack, build_attack, robust_accuracy, robust_curve
from robustft.attacks.record import ReturnedLogits
from robustft.models.tiny import tiny_cnn, tiny_vit

EPS = 8 / 255
# Radii where these random tiny models are fooled on some samples but not all (seeds 0-2).
CURVE = {"cnn": [0, 4 / 255, 6 / 255], "vit": [0, 6 / 255, 8 / 255]}


def _model(kind: str) -> torch.nn.Module:
    return (tiny_cnn(num_classes=10) if kind == "cnn" else tiny_vit(num_classes=10)).eval()


def _data(model: torch.nn.Module, seed: int, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with the model's own labels for the first two thirds (clean-correct) and other labels for the rest
    (clean-misclassified: they must count as non-robust without being attacked)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=generator)
    with torch.no_grad():
        labels = model(images).argmax(1)
    wrong = slice(2 * n // 3, n)
    labels[wrong] = (labels[wrong] + 1 + torch.randint(0, 9, (n - 2 * n // 3,), generator=generator)) % 10
    return images, labels


def _attack(name: str, seed: int) -> Attack:
    generator = torch.Generator().manual_seed(seed)
    if name == "pgd":  # a large step makes iterates overshoot: a sample fooled mid-way may not be fooled at the end
        return build_attack("pgd", steps=6, step_size=EPS, restarts=2, generator=generator)
    if name == "apgd-ce":
        return build_attack("apgd-ce", steps=6, restarts=2, generator=generator)
    return build_attack("cascade", steps=3, n_target_classes=2, n_queries=15, generator=generator)


@pytest.mark.parametrize("kind", ["cnn", "vit"])
@pytest.mark.parametrize("name", ["pgd", "apgd-ce", "cascade"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recorded_verdicts_equal_a_reclassification_sample_by_sample(kind, name, seed):
    model = _model(kind)
    images, labels = _data(model, seed)
    with torch.no_grad():
        clean = (model(images).argmax(1) == labels).numpy()
    eps_list = CURVE[kind]
    for early_stop in (False, True):
        # Without early stop a sample's last iterate need not be its best (fooling) one, which is what can go wrong.
        fast = robust_curve(model, (images, labels), _attack(name, seed), eps_list, early_stop=early_stop)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # recheck warns where the two verdicts differ: here they must not
            checked = robust_curve(model, (images, labels), _attack(name, seed), eps_list, early_stop=early_stop,
                                   recheck=True)
        for ours, theirs in zip(fast, checked, strict=True):
            assert ours.per_sample.tolist() == theirs.per_sample.tolist()
            assert (ours.correct, ours.clean_correct) == (theirs.correct, theirs.clean_correct)
        # The clean verdict is the clean images' own, not that of the attack's (random) starting point.
        assert fast[0].per_sample.tolist() == clean.tolist()
        assert fast[0].clean_correct == int(clean.sum()) == 16
        assert not fast[-1].per_sample[~clean].any()  # misclassified clean: non-robust at every eps
    assert any(0 < point.correct < 16 for point in fast[1:])  # the attack fools some samples, not all


@pytest.mark.parametrize("kind", ["cnn", "vit"])
@pytest.mark.parametrize("name", ["pgd", "apgd-ce", "fgsm", "square", "cascade"])
def test_recorded_logits_are_those_of_the_returned_points(kind, name):
    """Row i of the record is the model's logits at x_adv[i] (not at the last iterate, which for a sample the
    attack does not fool is often not its highest-loss point, the one returned)."""
    model = _model(kind)
    images, labels = _data(model, 0)
    eps = CURVE[kind][1]
    if name in ("fgsm", "square"):
        attack = build_attack(name, generator=torch.Generator().manual_seed(0))
        attack = attack.with_options(n_queries=20) if name == "square" else attack
    else:
        attack = _attack(name, 0).with_options(early_stop=False)
    record = ReturnedLogits()
    x_adv = attack.with_options(record=record)(model, images, labels, eps)
    with torch.no_grad():
        expected = model.eval()(x_adv)
    assert record.logits is not None and record.logits.shape == expected.shape
    torch.testing.assert_close(record.logits, expected, atol=1e-4, rtol=1e-4)


def test_recheck_trusts_the_reclassification_and_says_so_when_the_record_lies():
    model = _model("cnn")
    images, labels = _data(model, 0)

    def liar(model, images, labels, eps, *, record=None):
        """Returns the images and records logits claiming every sample is fooled."""
        if record is not None:
            record.logits = F.one_hot((labels + 1) % 10, 10).float()
        return images.clone()

    attack = Attack("liar", liar)
    trusted = robust_accuracy(model, (images, labels), attack, EPS)
    assert trusted.correct == 0  # the record is the verdict (what the fast path is for)
    with pytest.warns(UserWarning, match=r"recorded for 16 of its 16 returned points give another verdict than "
                      r"classifying those points again \(recheck\); the re-classification counts. Report this"):
        checked = robust_accuracy(model, (images, labels), attack, EPS, recheck=True)
    assert checked.correct == 16  # the unperturbed images are all classified correctly


class _Counter:
    """Forward passes through a module: calls, samples, and those building a graph for an input gradient."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = self.samples = self.with_grad = 0

        def count(module, args) -> None:
            self.calls += 1
            self.samples += args[0].shape[0]
            self.with_grad += int(torch.is_grad_enabled() and args[0].requires_grad)

        # A plain function (deepcopy keeps it; a bound method would copy the counter): prepared copies count too.
        module.register_forward_pre_hook(count)

    def counts(self) -> tuple[int, int, int]:
        counts = (self.calls, self.samples, self.with_grad)
        self.calls = self.samples = self.with_grad = 0
        return counts


def _plain_pgd_loop(model, images, labels, eps: float, steps: int) -> None:
    """torchattacks-style: a clean forward, PGD from a random start, a forward scoring the result."""
    with torch.no_grad():
        model(images)
    x = (images + torch.empty_like(images).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels), x)
        x = torch.min(torch.max(x.detach() + eps / 4 * grad.sign(), images - eps), images + eps).clamp(0, 1)
    with torch.no_grad():
        model(x)


@pytest.mark.parametrize("kind", ["cnn", "vit", "cnn-without-info"])
@pytest.mark.parametrize("name", ["pgd", "apgd-ce"])
def test_robust_accuracy_makes_no_more_passes_than_a_plain_loop(kind, name):
    model = _model("cnn" if kind != "vit" else "vit")
    if kind == "cnn-without-info":  # a bare module: the attack must not spend a pass to count its classes
        model = model.backbone
    counter = _Counter(model)
    images = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        labels = model(images).argmax(1)  # every sample correct: all are attacked, as in the plain loop
    counter.counts()
    _plain_pgd_loop(model, images, labels, EPS, steps=10)
    plain = counter.counts()
    assert plain == (12, 12 * 16, 10)
    attack = build_attack(name, steps=10, generator=torch.Generator().manual_seed(0))
    robust_accuracy(model, (images, labels), attack, EPS, early_stop=False)
    ours = counter.counts()
    assert ours == plain  # calls, samples and gradient passes: a clean pass, 10 with gradient, one last forward
    robust_accuracy(model, (images, labels), attack, EPS, early_stop=False, recheck=True)
    assert counter.counts() == (13, 13 * 16, 10)  # the re-check is exactly one more forward pass
    result = robust_accuracy(model, (images, labels), attack, 64 / 255, early_stop=True)
    calls, samples, _ = counter.counts()
    assert calls <= 12 and samples <= 12 * 16
    assert samples < 12 * 16 or result.correct == 16  # early stop: fooled samples leave the batch


@pytest.mark.parametrize("name", ["pgd", "apgd-ce"])
def test_bf16_passes_leave_the_record_empty_and_the_verdict_to_fp32(name):
    """Logits from bf16 passes are not what an fp32 classification says (this model's bf16 logits put +100 on
    class 0): the attack records none, and the evaluation classifies the returned points in fp32."""
    from test_attacks_precision import Linear
    from test_attacks_precision import _data as linear_data

    liar = Linear(bf16_bias=100.0)
    images, labels = linear_data(liar)
    keep = labels != 0
    images, labels = images[keep], labels[keep]
    attack = build_attack(name, precision="bf16", generator=torch.Generator().manual_seed(0))
    record = ReturnedLogits()
    attack.with_options(record=record)(liar, images, labels, 2 / 255)
    assert record.logits is None
    fast = robust_accuracy(liar, (images, labels), attack, 2 / 255, prepare=False)
    checked = robust_accuracy(liar, (images, labels), attack, 2 / 255, prepare=False, recheck=True)
    assert fast.per_sample.tolist() == checked.per_sample.tolist() and fast.correct > 0

"""Robust curves, pinned down sample by sample on a model whose every verdict is known in advance.

The model says class 1 when an image's first pixel exceeds 0.5; an attack that lowers that pixel by eps is then
the worst case, so which samples are robust at which eps, which samples each attack call receives, and how many
forward passes a curve takes all follow from the pixel values. These tests came from mutation testing of
attacks/robust_evaluation.py (``robust_curve``, ``_robust_curve``, ``_iter_batches``): each asserts behaviour a
surviving mutant had changed unnoticed.
"""

from __future__ import annotations

import types
import warnings

import pytest
import torch

import robustft.attacks.robust_evaluation as robust_evaluation
from robustft.attacks import Attack, build_attack, robust_accuracy, robust_curve
from robustft.errors import ConfigError

VALUES = torch.tensor([0.2, 0.9, 0.55, 0.7, 0.51, 0.3, 0.8, 0.62, 0.95, 0.58, 0.4])


class _Calls(list):
    """(id of the module that ran, batch size) per forward pass; shared with copies of the model, not copied."""

    def __deepcopy__(self, memo):
        return self


class _Threshold(torch.nn.Module):
    """Class 1 when the first pixel exceeds 0.5, else class 0; remembers which object ran and on how many images."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = _Calls()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((id(self), x.shape[0]))
        first = x[:, 0, 0, 0]
        return torch.stack([0.5 - first, first - 0.5], dim=1)


def _images(values: torch.Tensor = VALUES) -> tuple[torch.Tensor, torch.Tensor]:
    """Images 1 x 2 x 2 filled with each value, all labelled 1 (robust at eps while value - eps > 0.5)."""
    return values.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous(), torch.ones(len(values), dtype=torch.long)


def _batches(size: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    images, labels = _images()
    return [(images[i:i + size], labels[i:i + size]) for i in range(0, len(labels), size)]


def _shift_down(model, x, y, eps):
    return (x - eps).clamp(0, 1)


def _robust(eps: float) -> list[bool]:
    return (VALUES - eps > 0.5).tolist()


def test_batches_may_come_as_a_generator_or_a_tuple_of_batches():
    """Any iterable of (images, labels) works, a one-shot generator and a tuple of pairs included; only a pair of
    tensors is one batch."""
    eps_list = [0.0, 0.1]
    want = [_robust(0.0), _robust(0.1)]
    as_list = robust_curve(_Threshold(), _batches(), _shift_down, eps_list, prepare=False)
    as_generator = robust_curve(_Threshold(), (pair for pair in _batches()), _shift_down, eps_list, prepare=False)
    as_tuple = robust_curve(_Threshold(), tuple(_batches()), _shift_down, eps_list, prepare=False)
    two_batches = robust_curve(_Threshold(), tuple(_batches(6)), _shift_down, eps_list, prepare=False)
    for curve in (as_list, as_generator, as_tuple, two_batches):
        assert [point.per_sample.tolist() for point in curve] == want
        assert [point.n for point in curve] == [len(VALUES)] * 2


def test_each_eps_attacks_only_the_samples_still_robust_and_eps_zero_attacks_none():
    """Nesting, seen from the attack: at eps_i it receives exactly the samples robust at eps_(i-1), in input order,
    chunk by chunk; at eps 0 it is not called (the clean pass is the verdict); a chunk with nothing left is skipped."""
    received: list[tuple[float, list[float]]] = []

    def recording(model, x, y, eps):
        received.append((eps, x[:, 0, 0, 0].tolist()))
        return _shift_down(model, x, y, eps)

    eps_list = [0.0, 0.04, 0.1, 0.25]
    curve = robust_curve(_Threshold(), _batches(), recording, eps_list, prepare=False)
    want = []
    for batch in VALUES.split(4):  # batch by batch, then eps by eps
        for before, eps in zip(eps_list, eps_list[1:], strict=False):
            still = [float(v) for v in batch if v - before > 0.5]
            if still:
                want.append((eps, still))
    assert [(e, pytest.approx(v)) for e, v in received] == want
    assert [point.correct for point in curve] == [sum(_robust(e)) for e in eps_list] == [8, 7, 5, 3]


def test_a_curve_over_several_batches_counts_every_batch():
    """n, clean_correct and correct are sums over all batches (not the last one), whatever the chunk size."""
    curve = robust_curve(_Threshold(), _batches(4), _shift_down, [0.0, 0.1, 0.25], batch_size=3, prepare=False)
    assert [(p.n, p.clean_correct, p.correct) for p in curve] == [(11, 8, 8), (11, 8, 5), (11, 8, 3)]
    assert [p.accuracy for p in curve] == pytest.approx([8 / 11, 5 / 11, 3 / 11])
    assert [p.eps for p in curve] == [0.0, 0.1, 0.25]
    assert all(p.attack == "_shift_down" for p in curve)


def test_seconds_are_per_eps_with_the_clean_pass_counted_at_the_first(monkeypatch):
    """With a fake clock (forward passes cost 1, an attack call 10): each eps gets the time of its own attack calls
    and verdicts, summed over batches; the clean pass goes to the first eps; nothing else is added."""
    clock = types.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(robust_evaluation, "time", types.SimpleNamespace(perf_counter=lambda: clock.now))

    class Timed(_Threshold):
        def forward(self, x):
            clock.now += 1
            return super().forward(x)

    def costly(model, x, y, eps):
        clock.now += 10
        return _shift_down(model, x, y, eps)

    # Two batches with samples robust at every eps: per batch 1 clean pass, then per eps > 0 one attack + verdict.
    images, labels = _images(torch.tensor([0.9, 0.2, 0.95, 0.3]))
    batches = [(images[:2], labels[:2]), (images[2:], labels[2:])]
    curve = robust_curve(Timed(), batches, costly, [0.0, 0.1, 0.2], prepare=False)
    assert [point.seconds for point in curve] == [2.0, 22.0, 22.0]
    first_attacked = robust_curve(Timed(), batches, costly, [0.1, 0.2], prepare=False)
    assert [point.seconds for point in first_attacked] == [2.0 + 22.0, 22.0]


def test_robust_curve_by_default_evaluates_a_prepared_copy_and_with_prepare_false_the_model_itself():
    model = _Threshold()
    robust_curve(model, _batches(), _shift_down, [0.0, 0.1])
    assert model.calls and all(who != id(model) for who, _ in model.calls)  # the copy ran, in every pass
    model.calls.clear()
    robust_curve(model, _batches(), _shift_down, [0.0, 0.1], prepare=False)
    assert model.calls and all(who == id(model) for who, _ in model.calls)


def test_robust_curve_by_default_stops_attacking_fooled_samples_and_trusts_the_recorded_logits():
    """Defaults early_stop=True (fooled samples leave PGD's batch) and recheck=False (no pass re-classifying the
    returned points): fewer images through the model than either opposite, with the same verdicts."""
    images, labels = _images()
    attack = build_attack("pgd", steps=5, step_size=0.05, random_start=False)

    def images_through_the_model(**options) -> tuple[list[int], int]:
        model = _Threshold()
        curve = robust_curve(model, (images, labels), attack, [0.0, 0.1, 0.2], prepare=False, **options)
        return [point.correct for point in curve], sum(size for _, size in model.calls)

    default, default_images = images_through_the_model()
    same, same_images = images_through_the_model(early_stop=True, recheck=False)
    no_early_stop, no_early_stop_images = images_through_the_model(early_stop=False)
    rechecked, rechecked_images = images_through_the_model(recheck=True)
    assert default == same == no_early_stop == rechecked == [8, 5, 3]
    assert default_images == same_images < min(no_early_stop_images, rechecked_images)


def test_a_repeated_eps_is_allowed_and_a_falling_one_refused():
    """eps_list must not fall; an eps given twice is fine (the second point attacks what the first left)."""
    curve = robust_curve(_Threshold(), _batches(), _shift_down, [0.0, 0.1, 0.1], prepare=False)
    assert [point.correct for point in curve] == [8, 5, 5]
    with pytest.raises(ConfigError, match=r"ascending order, got \[0.0, 0.1, 0.05\]"):
        robust_curve(_Threshold(), _batches(), _shift_down, [0.0, 0.1, 0.05], prepare=False)


def test_a_device_that_does_not_exist_is_refused():
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    with pytest.raises(ConfigError, match="asks for CUDA but none is available"):
        robust_curve(_Threshold(), _batches(), _shift_down, [0.0, 0.1], device="cuda", prepare=False)
    cpu = robust_curve(_Threshold(), _batches(), _shift_down, [0.0, 0.1], device="cpu", prepare=False)
    assert [point.correct for point in cpu] == [8, 5]


@pytest.mark.parametrize("entry", ["robust_accuracy", "robust_curve"])
def test_the_recheck_warning_points_at_the_callers_line(entry):
    """A warning is for the user: its file and line should be the user's call, not the library's inside."""

    def liar(model, images, labels, eps, *, record=None):
        """Returns the images unchanged but records logits saying every sample is fooled."""
        if record is not None:
            record.logits = torch.nn.functional.one_hot(1 - labels, 2).float()
        return images.clone()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if entry == "robust_accuracy":
            robust_accuracy(_Threshold(), _batches(), Attack("liar", liar), 0.1, prepare=False, recheck=True)
        else:
            robust_curve(_Threshold(), _batches(), Attack("liar", liar), [0.1], prepare=False, recheck=True)
    assert [w.filename for w in caught if "recheck" in str(w.message)] == [__file__] * 3  # one per batch


@pytest.mark.parametrize(("call", "message"), [
    (lambda: robust_curve(_Threshold(), _batches(), [0, 0.1], _shift_down),
     r"^robust_curve takes \(model, batches, attack, eps_list\), in the order of robust_accuracy\(model, batches, "
     r"attack, eps\); it got radii where the attack goes\. Write robust_curve\(model, batches, attack, "
     r"\[0, 1/255, \.\.\.\]\) or pass attack= and eps_list= by name\.$"),
    (lambda: robust_curve(_Threshold(), _batches(), _shift_down, []),
     r"^robust_curve needs at least one eps, e\.g\. \[0, 1/255, 2/255\]\.$"),
    (lambda: robust_accuracy(_Threshold(), iter([]), _shift_down, 0.1),
     r"^robust evaluation got no samples; check the data split and --limit\.$"),
])
def test_misuse_gets_the_whole_message_that_names_the_fix(call, message):
    with pytest.raises(ConfigError, match=message):
        call()

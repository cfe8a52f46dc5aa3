"""Robust evaluation: clean accuracy at eps 0, nesting, expected robustness, model preparation."""

from __future__ import annotations

import copy

import pytest
import torch

from robustft.attacks import (
    RobustAccuracy,
    build_attack,
    expected_robustness,
    fold_conv_bn,
    prepare_for_attack,
    robust_accuracy,
    robust_curve,
)
from robustft.config.units import eps_grid
from robustft.errors import ConfigError
from robustft.models.tiny import tiny_cnn, tiny_vit
from test_attacks_support import quadrant_task, trained_tiny_cnn


def _data(n=40, size=12, seed=0):
    if size == 16:
        return quadrant_task(n, seed=seed + 100)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.fixture(scope="module")
def model():
    """A trained tiny CNN (trained BatchNorm statistics, so folding is really tested)."""
    return trained_tiny_cnn()


def test_eps_zero_is_clean_accuracy(model):
    images, labels = _data(size=16)
    result = robust_accuracy(model, (images, labels), build_attack("pgd", steps=2), 0.0)
    clean = int((model(images).argmax(1) == labels).sum())
    assert result.correct == clean == result.clean_correct and result.n == len(labels)
    assert result.accuracy == pytest.approx(clean / len(labels))
    assert result.ci_low <= result.accuracy <= result.ci_high


def test_accepts_batch_iterables_and_chunks(model):
    images, labels = _data(size=16)
    attack = build_attack("pgd", steps=3, generator=None, random_start=False)
    whole = robust_accuracy(model, (images, labels), attack, 2 / 255)
    batches = [(images[i:i + 7], labels[i:i + 7]) for i in range(0, 40, 7)]
    chunked = robust_accuracy(model, batches, attack, 2 / 255, batch_size=5)
    assert (whole.correct, whole.n) == (chunked.correct, chunked.n)
    dicts = [{"image": x, "label": y} for x, y in batches]
    assert robust_accuracy(model, dicts, attack, 2 / 255).correct == whole.correct


def test_clean_misclassified_count_as_non_robust(model):
    images, labels = _data(size=16)
    labels = labels.clone()
    labels[:10] = (labels[:10] + 1) % 4  # some samples the model gets wrong
    wrong = model(images).argmax(1) != labels
    assert wrong.any()
    # An "attack" that does nothing cannot make a misclassified sample robust.
    result = robust_accuracy(model, (images, labels), lambda m, x, y, eps: x.clone(), 4 / 255)
    assert result.correct == int((~wrong).sum())


def test_verdict_comes_from_the_returned_point(model):
    """A sample counts as fooled exactly when the returned point is misclassified, whatever the attack did inside."""
    images, labels = _data(size=16)
    eps = 12 / 255
    clean = model(images).argmax(1) == labels
    real = build_attack("pgd", steps=5, random_start=False)

    def half_hearted(m, x, y, e):
        """Finds fooling points (real PGD) but returns them only for every other sample, the input otherwise."""
        x_adv = real(m, x, y, e)
        keep = torch.arange(len(y)) % 2 == 0
        return torch.where(keep.view(-1, 1, 1, 1), x_adv, x)

    result = robust_accuracy(model, (images, labels), half_hearted, eps)
    idx = torch.nonzero(clean).squeeze(1)  # only clean-correct samples are attacked, in this order
    returned = half_hearted(prepare_for_attack(model), images[idx], labels[idx], eps)
    expected = int((model(returned).argmax(1) == labels[idx]).sum())
    fooled_by_pgd = int((model(real(model, images[idx], labels[idx], eps)).argmax(1) != labels[idx]).sum())
    assert result.correct == expected
    assert int(clean.sum()) > expected > int(clean.sum()) - fooled_by_pgd  # returned points fool, withheld do not


@pytest.mark.parametrize(("cheat", "message"), [
    ("too_far", r"attack cheating returned points outside the threat model .*; its successes cannot be counted. An "
                r"attack must return images in \[0, 1\] within eps of its inputs"),
    ("outside_box", "outside the threat model"),
    ("below_zero", r"outside the threat model \(distance 0.00784 from the images for eps=0.01569, values in \[-"),
    ("one_short", r"returned shape \(\d+, 3, 16, 16\) for images \(\d+, 3, 16, 16\); an attack returns one"),
])
def test_inadmissible_points_are_refused_not_counted(model, cheat, message):
    images, labels = _data(size=16)

    def cheating(m, x, y, e):
        if cheat == "one_short":
            return x[1:].clone()
        if cheat == "below_zero":
            return x - 0.5 * e  # within eps, but the darkest pixels leave the [0, 1] box
        return (x + 2 * e).clamp(0, 1) if cheat == "too_far" else x + 0.5 * e + 1.0

    with pytest.raises(ConfigError, match=message):
        robust_accuracy(model, (images, labels), cheating, 4 / 255)


def test_curve_is_nested_and_non_increasing(model):
    images, labels = _data(60, size=16)
    eps_list = eps_grid(16 / 255, step=4 / 255)
    curve = robust_curve(model, (images, labels), build_attack("pgd", steps=3), eps_list)
    accs = [r.accuracy for r in curve]
    assert [r.eps for r in curve] == pytest.approx(eps_list)
    assert all(b <= a for a, b in zip(accs, accs[1:], strict=False))
    assert curve[0].correct == curve[0].clean_correct
    assert accs[-1] < accs[0]  # the attack does something at 16/255 on this model


def test_curve_no_higher_than_independent_runs(model):
    images, labels = _data(60, size=16)
    attack = build_attack("pgd", steps=3, random_start=False)  # deterministic: nesting can only add fooled points
    eps_list = [0, 6 / 255, 10 / 255, 14 / 255]
    curve = robust_curve(model, (images, labels), attack, eps_list)
    for point in curve:
        independent = robust_accuracy(model, (images, labels), attack, point.eps)
        assert point.correct <= independent.correct


def test_curve_rejects_unsorted_eps(model):
    images, labels = _data(size=16)
    with pytest.raises(ConfigError, match="ascending"):
        robust_curve(model, (images, labels), "pgd", [2 / 255, 1 / 255])


def test_expected_robustness_is_the_trapezoid_mean():
    eps = eps_grid(4 / 255)
    assert expected_robustness(eps, [0.9] * 5) == pytest.approx(0.9)
    # Linear fall from 0.8 to 0.0 over the range: mean 0.4.
    assert expected_robustness(eps, [0.8, 0.6, 0.4, 0.2, 0.0]) == pytest.approx(0.4)
    # Trapezoid, not the plain mean of points: (1 + 0)/2 * 1/2 + (0 + 0)/2 * 1/2 = 0.25 (plain mean 1/3).
    assert expected_robustness([0, 1 / 255, 2 / 255], [1.0, 0.0, 0.0]) == pytest.approx(0.25)
    points = [RobustAccuracy.from_counts(k, 10, 10, e, "x", 0.0)
              for k, e in zip([10, 5, 0], [0, 1 / 255, 2 / 255], strict=True)]
    assert expected_robustness([0, 1 / 255, 2 / 255], points) == pytest.approx(0.5)


def test_expected_robustness_needs_no_numpy_2(monkeypatch):
    """pyproject allows numpy >= 1.24, where np.trapezoid does not exist (numpy 1.x has only np.trapz)."""
    import numpy

    monkeypatch.delattr(numpy, "trapezoid", raising=False)
    uneven = [0, 1 / 255, 2 / 255, 3.6 / 255]
    accs = [0.9, 0.6, 0.5, 0.1]
    pairs = zip(uneven, uneven[1:], accs, accs[1:], strict=False)
    by_hand = sum((b - a) * (fa + fb) / 2 for a, b, fa, fb in pairs) / uneven[-1]
    assert expected_robustness(uneven, accs) == pytest.approx(by_hand)


@pytest.mark.parametrize("eps, accs, message", [
    ([1 / 255, 2 / 255], [0.5, 0.4], "strictly ascending eps starting at 0"),
    ([0, 1 / 255, 1 / 255], [0.5, 0.4, 0.3], "strictly ascending eps starting at 0; got"),  # a repeated eps
    ([0, 2 / 255, 1 / 255], [0.5, 0.4, 0.3], "strictly ascending eps starting at 0; got"),  # the last pair falls
    ([0], [0.5], "needs >= 2 eps and one accuracy each; got 1 and 1"),
    ([0, 1 / 255], [0.5], "needs >= 2 eps and one accuracy each; got 2 and 1"),
])
def test_expected_robustness_bad_input(eps, accs, message):
    with pytest.raises(ConfigError, match=message):
        expected_robustness(eps, accs)


def test_expected_robustness_of_two_points_is_their_mean():
    assert expected_robustness([0, 8 / 255], [0.9, 0.3]) == pytest.approx(0.6)


@pytest.mark.parametrize("make", [lambda: tiny_cnn(num_classes=3, width=6, seed=4), lambda: tiny_vit(num_classes=3)])
def test_prepare_keeps_the_function_and_leaves_the_model_alone(make):
    net = make()
    images, _ = _data(16, size=32)
    net.train()
    with torch.no_grad():
        net(images)  # non-trivial running statistics
    net.eval()
    net.backbone.train()  # a partly-training model: modes must come back exactly
    next(net.parameters()).requires_grad_(False)
    before_state = copy.deepcopy(net.state_dict())
    before_modes = {n: m.training for n, m in net.named_modules()}
    before_flags = {n: p.requires_grad for n, p in net.named_parameters()}
    net.eval()
    with torch.no_grad():
        reference = net(images)
    for n, m in net.named_modules():
        m.training = before_modes[n]

    prepared = prepare_for_attack(net)
    assert not prepared.training and all(not p.requires_grad for p in prepared.parameters())
    with torch.no_grad():
        assert torch.allclose(prepared(images), reference, atol=1e-4, rtol=1e-4)
    assert {n: m.training for n, m in net.named_modules()} == before_modes
    assert {n: p.requires_grad for n, p in net.named_parameters()} == before_flags
    assert all(torch.equal(before_state[k], v) for k, v in net.state_dict().items())
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(images), reference)  # identical logits from the user's model


def test_fold_conv_bn_folds_the_tiny_cnn():
    net = copy.deepcopy(tiny_cnn(num_classes=3)).eval()
    assert fold_conv_bn(net) == 4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_prepared_model_gives_same_robust_accuracy(model):
    images, labels = _data(40, size=16)
    attack = build_attack("pgd", steps=3, random_start=False)
    fast = robust_accuracy(model, (images, labels), attack, 12 / 255, prepare=True)
    plain = robust_accuracy(model, (images, labels), attack, 12 / 255, prepare=False)
    assert abs(fast.correct - plain.correct) <= 1  # float rounding of folded convs may flip a borderline sample


def test_empty_data_is_an_error(model):
    with pytest.raises(ConfigError, match="no samples"):
        robust_accuracy(model, [], "pgd", 1 / 255)


def test_string_eps_and_attack_names(model):
    images, labels = _data(size=16)
    result = robust_accuracy(model, (images, labels), "fgsm", "2/255")
    assert result.eps == pytest.approx(2 / 255) and result.attack.startswith("fgsm")


@pytest.mark.slow
def test_prepare_on_the_embedded_mobilenet():
    from robustft.models import build

    net = build("mobilenet_v2", 10).eval()
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = copy.deepcopy(net.state_dict())
    with torch.no_grad():
        reference = net(images)
    prepared = prepare_for_attack(net)
    assert fold_conv_bn(copy.deepcopy(net)) == 52  # every conv of MobileNetV2 is followed by its BatchNorm
    with torch.no_grad():
        assert torch.allclose(prepared(images), reference, atol=1e-3, rtol=1e-3)
        assert torch.equal(net(images), reference)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in net.parameters()) and not net.training


@pytest.mark.parametrize("name", ["pgd", "apgd-ce", "square", "fgsm", "cascade"])
def test_a_direct_call_attacks_the_prepared_model(model, name, monkeypatch):
    """``pgd(model, ...)`` called directly runs on the folded copy robust_accuracy uses: same points, and the
    user's BatchNorm layers (folded away in the copy) are never run."""
    images, labels = _data(24, size=16)
    options = {"pgd": {"steps": 3}, "apgd-ce": {"steps": 3}, "square": {"n_queries": 20}, "fgsm": {},
               "cascade": {"steps": 2, "n_target_classes": 2, "n_queries": 5}}[name]
    ran = []
    plain_forward = torch.nn.BatchNorm2d.forward

    def recording_forward(self, x):  # on the class, not a hook: a hooked BatchNorm is (rightly) never folded
        ran.append(self)
        return plain_forward(self, x)

    monkeypatch.setattr(torch.nn.BatchNorm2d, "forward", recording_forward)
    direct = build_attack(name, **options, generator=torch.Generator().manual_seed(0))(
        model, images, labels, 8 / 255)
    monkeypatch.undo()
    assert not any(module is user for module in ran for user in model.modules())
    prepared = build_attack(name, **options, generator=torch.Generator().manual_seed(0))(
        prepare_for_attack(model), images, labels, 8 / 255)
    assert torch.equal(direct, prepared)


def test_prepare_false_attacks_the_model_itself(model):
    images, labels = _data(8, size=16)
    calls = []
    hook = model.backbone.features[1].register_forward_hook(lambda *_: calls.append(1))
    try:
        build_attack("pgd", steps=2, prepare=False)(model, images, labels, 8 / 255)
        robust_accuracy(model, (images, labels), build_attack("pgd", steps=2), 8 / 255, prepare=False)
    finally:
        hook.remove()
    assert len(calls) >= 2 * 3  # both ran every pass through the model's own BatchNorm


class _ThresholdModel(torch.nn.Module):
    """Class 1 when the first pixel exceeds 0.5, else class 0: the verdict of every sample at every eps is known."""

    def forward(self, x):
        first = x[:, 0, 0, 0]
        return torch.stack([0.5 - first, first - 0.5], dim=1)


def _shift_down(model, x, y, eps):
    return (x - eps).clamp(0, 1)  # the worst case for class 1: lowers the first pixel by eps


def test_curve_returns_each_samples_nested_verdict_in_input_order():
    values = torch.tensor([0.2, 0.9, 0.55, 0.7, 0.51, 0.3, 0.8, 0.62, 0.95, 0.58, 0.4])
    images = values.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous()
    labels = torch.ones(len(values), dtype=torch.long)
    eps_list = [0.0, 0.04, 0.1, 0.25]
    batches = [(images[i:i + 4], labels[i:i + 4]) for i in range(0, len(values), 4)]
    curve = robust_curve(_ThresholdModel(), batches, _shift_down, eps_list, batch_size=3, prepare=False)
    for point, eps in zip(curve, eps_list, strict=True):
        want = (values - eps > 0.5).numpy()
        assert point.per_sample.dtype == bool and point.per_sample.tolist() == want.tolist(), eps
        assert int(point.per_sample.sum()) == point.correct
    assert "per_sample" not in curve[0].as_dict()


def test_a_result_from_counts_keeps_every_field():
    result = RobustAccuracy.from_counts(3, 4, 4, 0.1, "pgd", 2.5)
    assert result.as_dict() == {"correct": 3, "n": 4, "accuracy": 0.75, "ci_low": pytest.approx(result.ci_low),
                                "ci_high": pytest.approx(result.ci_high), "clean_correct": 4, "eps": 0.1,
                                "attack": "pgd", "seconds": 2.5}
    assert 0 < result.ci_low < 0.75 < result.ci_high < 1


def test_a_result_of_no_samples_has_a_nan_accuracy():
    result = RobustAccuracy.from_counts(0, 0, 0, 0.1, "pgd", 0.0)
    assert result.n == 0 and result.accuracy != result.accuracy  # nan, not a division error


def test_robust_accuracy_by_default_attacks_a_folded_copy(model, monkeypatch):
    """Default prepare=True: the user's BatchNorm layers (folded away in the copy) never run, in any pass."""
    images, labels = _data(12, size=16)
    ran = []
    plain_forward = torch.nn.BatchNorm2d.forward

    def recording_forward(self, x):
        ran.append(self)
        return plain_forward(self, x)

    monkeypatch.setattr(torch.nn.BatchNorm2d, "forward", recording_forward)
    robust_accuracy(model, (images, labels), build_attack("pgd", steps=2), 8 / 255)
    assert not any(module is user for module in ran for user in model.modules())


def test_robust_accuracy_by_default_stops_attacking_fooled_samples(model):
    """Default early_stop=True overrides the attack's own (off for pgd): fewer images go through the model, with the
    same verdict."""
    images, labels = _data(24, size=16)
    sizes: list[int] = []
    hook = model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))

    def evaluate(**options) -> tuple[int, int]:
        sizes.clear()
        result = robust_accuracy(model, (images, labels), build_attack("pgd", steps=5, random_start=False), 12 / 255,
                                 prepare=False, **options)
        return result.correct, sum(sizes)

    try:
        (default, default_images), (on, on_images) = evaluate(), evaluate(early_stop=True)
        off, off_images = evaluate(early_stop=False)
    finally:
        hook.remove()
    assert default == on == off < int((model(images).argmax(1) == labels).sum())  # some were fooled
    assert default_images == on_images < off_images


def test_robust_accuracy_attacks_in_chunks_of_batch_size(model):
    images, labels = _data(24, size=16)
    clean = int((model(images).argmax(1) == labels).sum())
    sizes: list[int] = []

    def recording(m, x, y, eps):
        sizes.append(x.shape[0])
        return x.clone()

    result = robust_accuracy(model, (images, labels), recording, 4 / 255, batch_size=5)
    assert result.correct == clean and sum(sizes) == clean  # only clean-correct samples are attacked
    assert sizes == [5] * (clean // 5) + ([clean % 5] if clean % 5 else [])


def test_points_on_the_edge_of_the_threat_model_count_and_just_beyond_are_refused():
    """A returned point may touch 0, 1 and distance eps exactly; 0.5 eps above 1 is refused, however close."""
    images = torch.tensor([0.0, 1.0, 0.6, 0.3]).view(1, 1, 2, 2).repeat(6, 1, 1, 1)
    labels = torch.zeros(6, dtype=torch.long)  # _ThresholdModel: first pixel 0.0 -> class 0, clean-correct
    eps = 4 / 255

    def on_the_edge(m, x, y, e):
        return torch.where(x >= 0.5, x + e, x - e).clamp(0, 1)  # 0 and 1 stay, 0.6 and 0.3 move by eps exactly

    def just_above_one(m, x, y, e):
        return x + 0.5 * e

    result = robust_accuracy(_ThresholdModel(), (images, labels), on_the_edge, eps, prepare=False)
    assert result.correct == result.clean_correct == 6
    with pytest.raises(ConfigError, match=r"values in \[0.00784, 1.01\]"):
        robust_accuracy(_ThresholdModel(), (images, labels), just_above_one, eps, prepare=False)


def test_out_of_memory_halves_the_chunk_until_it_fits_and_keeps_every_verdict():
    """CUDA out-of-memory, simulated: the chunk halves (16 -> 8 -> 4 -> 2 -> 1) and the rest runs at the size that
    fit; when even one sample does not fit, the error is the caller's."""
    from robustft.attacks.robust_evaluation import _with_oom_retry

    images, labels = torch.rand(10, 2, generator=torch.Generator().manual_seed(0)), torch.zeros(10)
    sizes: list[int] = []

    def fits_one(x, y):
        sizes.append(len(x))
        if len(x) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return x[:, 0] > 0.5

    assert torch.equal(_with_oom_retry(fits_one, (images, labels), 16), images[:, 0] > 0.5)
    assert sizes == [10, 8, 4, 2] + [1] * 10

    def never_fits(x, y):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        _with_oom_retry(never_fits, (images, labels), 4)

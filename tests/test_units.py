import pytest

from robustft.config.units import canonical_metric_key, eps_grid, format_eps, parse_eps
from robustft.errors import ConfigError
from robustft.runs.records import record_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4/255", 4 / 255), ("0", 0.0), (0, 0.0), ("0.0157", 0.0157), (8 / 255, 8 / 255), (" 1 / 255 ", 1 / 255),
     ("0.25/255", 0.25 / 255), (".5/255", 0.5 / 255), ("1e-3", 1e-3), ("2.5e-1/255", 0.25 / 255)],
)
def test_parse_eps_accepts_fractions_and_floats(text, expected):
    assert parse_eps(text) == pytest.approx(expected)


@pytest.mark.parametrize("value", [8, "8", 2.0])
def test_parse_eps_above_one_suggests_pixel_fraction(value):
    with pytest.raises(ConfigError, match="/255"):
        parse_eps(value)


@pytest.mark.parametrize("value", ["-1/255", "abc", "1/0", True, "nan", "inf", "1/-255", "4/255/2", "-0.1"])
def test_parse_eps_rejects_garbage(value):
    with pytest.raises(ConfigError):
        parse_eps(value)


def test_format_and_grid():
    assert format_eps(4 / 255) == "4/255"
    assert format_eps(0.0) == "0"
    grid = eps_grid(4 / 255)
    assert len(grid) == 5 and grid[0] == 0 and grid[-1] == pytest.approx(4 / 255)
    assert len(eps_grid(8 / 255)) == 9


def test_decimal_fraction_is_exact():
    # Same float as the Python expression, so a config's "0.25/255" and code's 0.25 / 255 are one eps.
    assert parse_eps("0.25/255") == 0.25 / 255


@pytest.mark.parametrize(("eps", "text"), [
    (1 / 255, "1/255"), (0.25 / 255, "0.25/255"), (0.5 / 255, "0.5/255"), (8 / 255, "8/255"), (0.0157, "0.0157"),
    (0.1, "0.1"), (0.0, "0"), (1.5, "1.5"), (1e-5, "1e-05"),
])
def test_format_eps_reads_as_written(eps, text):
    assert format_eps(eps) == text
    if eps <= 1:
        assert parse_eps(format_eps(eps)) == pytest.approx(eps, rel=1e-9)


def test_metric_key_names_eps_as_a_fraction_of_255():
    def key(split, attack, metric, eps=None):
        return record_key({"split": split, "attack": attack, "metric": metric, "eps": eps})

    assert key("test", "pgd", "accuracy", 1 / 255) == "test/pgd/accuracy@1/255"
    assert key("test", "pgd", "accuracy", 0.25 / 255) == "test/pgd/accuracy@0.25/255"
    assert key("val", "clean", "accuracy", 0.0) == "val/clean/accuracy"
    assert key("val", None, "accuracy") == "val/clean/accuracy"
    assert key("optim", "standard", "loss", 4 / 255) == "optim/standard/loss"
    assert key("optim", None, "lr") == "optim/none/lr"


@pytest.mark.parametrize("old", ["test/pgd/accuracy@0.003922", "test/pgd/accuracy@0.0039216",
                                 "test/pgd/accuracy@1/255"])
def test_old_metric_keys_map_to_the_new_ones(old):
    assert canonical_metric_key(old) == "test/pgd/accuracy@1/255"
    assert canonical_metric_key("val/clean/accuracy") == "val/clean/accuracy"
    assert canonical_metric_key("test/pgd/accuracy@0.0157") == "test/pgd/accuracy@0.0157"


def test_eps_grid_floors_below_eps_max_then_ends_at_it():
    """The multiples of 1/255 below eps_max, then eps_max: ascending and never above it."""
    grid = eps_grid(3.6 / 255)
    assert grid == pytest.approx([0, 1 / 255, 2 / 255, 3 / 255, 3.6 / 255])
    assert grid == sorted(grid) and grid[-1] == 3.6 / 255
    assert eps_grid(3.4 / 255) == pytest.approx([0, 1 / 255, 2 / 255, 3 / 255, 3.4 / 255])
    assert eps_grid(0.5 / 255) == pytest.approx([0, 0.5 / 255])
    four = eps_grid(4 / 255)  # on the grid: no duplicate end point
    assert len(four) == 5 and four[-1] == 4 / 255
    assert eps_grid(12 / 255) == pytest.approx([k / 255 for k in range(13)])
    assert eps_grid(0.0) == [0.0]

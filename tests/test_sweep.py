import pytest

from obliviate.config import load_config
from obliviate.errors import ObliviateError
from obliviate.sweep import default_grid, parse_grid, pareto_front


def test_pareto_front_by_hand():
    points = [(0.1, 0.9), (0.5, 0.5), (0.4, 0.4), (0.9, 0.1), (0.5, 0.5), (0.05, 0.95)]
    # (0.4, 0.4) is dominated by (0.5, 0.5); the two equal (0.5, 0.5) points do not dominate each other
    assert pareto_front(points) == [True, True, False, True, True, True]


def test_default_grid_brackets_the_configured_strength():
    cfg = load_config("micro", [])
    grid = default_grid(cfg, "gradient_difference")
    base = cfg.method_config("gradient_difference")
    assert grid == {"steps": [base.steps // 2, base.steps, base.steps * 2], "lr": [base.lr / 2, base.lr]}


def test_parse_grid_types_values_and_rejects_bad_keys():
    cfg = load_config("micro", [])
    assert parse_grid(["steps=10,20", "lr=1e-3"], cfg, "gradient_ascent") == {"steps": [10, 20], "lr": [1e-3]}
    with pytest.raises(ObliviateError, match="not a setting of gradient_ascent"):
        parse_grid(["beta=0.1"], cfg, "gradient_ascent")
    with pytest.raises(ObliviateError, match="malformed --grid"):
        parse_grid(["steps"], cfg, "gradient_ascent")

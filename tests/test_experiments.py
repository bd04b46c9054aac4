"""Sticky assignment: stable per user, shares as configured, holdout immune to experiments."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from app.experiments import (
    DEFAULT_EXPERIMENTS,
    HOLDOUT,
    Assigner,
    ExperimentConfig,
    VariantConfig,
    load_experiments,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
N_USERS = 20_000


def three_way(salt: str = "exp-a", holdout_share: float = 0.05) -> ExperimentConfig:
    return ExperimentConfig(
        name="exp",
        salt=salt,
        holdout_share=holdout_share,
        variants=[
            VariantConfig(name="control", weight=2.0),
            VariantConfig(name="b", weight=1.0, blend={"click": 1.0, "regret": 0.5}),
            VariantConfig(name="c", weight=1.0, llm_rerank=True, prompts={"rerank": 2}),
        ],
        control="control",
    )


def assignments(config: ExperimentConfig, n: int = N_USERS) -> list[str]:
    assigner = Assigner(config)
    return [assigner.assign(u).name for u in range(n)]


def test_repo_config_file_equals_default() -> None:
    assert load_experiments(REPO_ROOT / "config" / "experiments.toml") == DEFAULT_EXPERIMENTS


def test_default_config_shape() -> None:
    cfg = DEFAULT_EXPERIMENTS
    assert (cfg.name, cfg.control, cfg.holdout_share) == ("feed-v1", "control", 0.05)
    by_name = {v.name: v for v in cfg.variants}
    assert by_name["control"].weight == by_name["diverse"].weight == 0.5
    assert by_name["control"].diversity_lambda is None
    assert by_name["diverse"].diversity_lambda == 0.7
    assert cfg.holdout == VariantConfig(name=HOLDOUT)


def test_assignment_is_sticky_across_instances() -> None:
    first, second = Assigner(three_way()), Assigner(three_way())
    for user in range(2_000):
        assert first.assign(user) == second.assign(user)
        assert first.assign(user) == first.assign(user)


def test_str_and_int_keys_work_and_agree() -> None:
    assigner = Assigner(three_way())
    names = set(assigner.variants)
    for user in range(500):
        assert assigner.assign(str(user)).name in names
        assert assigner.assign(str(user)) == assigner.assign(user)
    assert assigner.assign("anonymous-session-7f3a").name in names


def test_variants_property_includes_holdout() -> None:
    variants = Assigner(three_way()).variants
    assert list(variants) == [HOLDOUT, "control", "b", "c"]
    assert variants["b"].blend == {"click": 1.0, "regret": 0.5}


def test_shares_match_config() -> None:
    counts = Counter(assignments(three_way()))
    assert counts[HOLDOUT] / N_USERS == pytest.approx(0.05, abs=0.01)
    in_experiment = N_USERS - counts[HOLDOUT]
    expected = {"control": 0.5, "b": 0.25, "c": 0.25}
    for name, share in expected.items():
        assert counts[name] / in_experiment == pytest.approx(share, abs=0.02), name


def test_zero_holdout_share_holds_out_nobody() -> None:
    assert HOLDOUT not in assignments(three_way(holdout_share=0.0), 5_000)


def test_holdout_unchanged_when_experiment_changes() -> None:
    base = assignments(three_way(salt="exp-a"))
    held_out = {u for u, name in enumerate(base) if name == HOLDOUT}
    other = ExperimentConfig(
        name="other",
        salt="something-else",
        variants=[VariantConfig(name="x"), VariantConfig(name="y", diversity_lambda=0.2)],
        control="x",
    )
    for config in (three_way(salt="exp-b"), other):
        names = assignments(config)
        assert {u for u, name in enumerate(names) if name == HOLDOUT} == held_out


def test_new_salt_reshuffles_variants() -> None:
    a, b = assignments(three_way(salt="exp-a")), assignments(three_way(salt="exp-b"))
    both = [(x, y) for x, y in zip(a, b, strict=True) if HOLDOUT not in (x, y)]
    changed = sum(x != y for x, y in both) / len(both)
    # Independent draws with shares (.5, .25, .25) differ with probability 1 - .375 = .625.
    assert changed == pytest.approx(0.625, abs=0.03)


VALID_TOML = """
name = "exp"
salt = "exp"
control = "control"

[holdout]
name = "holdout"

[[variants]]
name = "control"
weight = 1.0

[[variants]]
name = "treatment"
weight = 1.0
"""


def test_load_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(VALID_TOML)
    cfg = load_experiments(path)
    assert [v.name for v in cfg.variants] == ["control", "treatment"]
    assert cfg.holdout_share == 0.05


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('name = "treatment"', 'name = "treatment"\nweigth = 2.0', "weigth"),
        ('salt = "exp"', 'salt = "exp"\nholdout_shares = 0.1', "holdout_shares"),
        ("weight = 1.0\n\n[[variants]]", "weight = 0.0\n\n[[variants]]", "weight"),
        ("weight = 1.0\n\n[[variants]]", "weight = -1.0\n\n[[variants]]", "weight"),
        ('name = "treatment"', 'name = "control"', "duplicate"),
        ('control = "control"', 'control = "missing"', "missing"),
        ('name = "treatment"', 'name = "holdout"', "reserved"),
        ('[holdout]\nname = "holdout"', '[holdout]\nname = "hold"', "holdout"),
        ('salt = "exp"', 'salt = "exp"\nholdout_share = 0.6', "holdout_share"),
        ('name = "treatment"', 'name = "treatment"\ndiversity_lambda = 1.5', "diversity"),
        ('name = "treatment"', 'name = "treatment"\nblend = { clicks = 1.0 }', "blend"),
        ('name = "treatment"', 'name = "treatment"\nblend = { like = -0.5 }', "blend"),
        ('salt = "exp"', 'salt = "marquee-long-term-holdout"', "salt"),
    ],
)
def test_invalid_config_raises_value_error_with_path(
    tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    assert old in VALID_TOML
    path = tmp_path / "bad.toml"
    path.write_text(VALID_TOML.replace(old, new, 1))
    with pytest.raises(ValueError) as info:
        load_experiments(path)
    message = str(info.value)
    assert str(path) in message
    assert fragment in message


def test_empty_variants_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text('name = "e"\nsalt = "e"\ncontrol = "c"\nvariants = []\n')
    with pytest.raises(ValueError, match="variants"):
        load_experiments(path)


def test_missing_file_and_bad_toml_raise_value_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ValueError) as info:
        load_experiments(missing)
    assert str(missing) in str(info.value)
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "unterminated\n')
    with pytest.raises(ValueError) as info:
        load_experiments(broken)
    assert str(broken) in str(info.value)
    assert "TOML" in str(info.value)

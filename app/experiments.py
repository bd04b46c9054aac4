"""Sticky experiment assignment: which feed variant a user sees.

Assignment is a pure function of the user key and the config, so every replica and every
restart agrees without shared state, and a returning user keeps their variant. Hashing uses
blake2b because Python's `hash()` of a str is salted per process (PYTHONHASHSEED).

The long-term holdout is decided by a hash with a fixed salt that no experiment can change:
the same users stay out of every experiment, which is what makes the holdout usable to
measure the cumulative effect of all launches. Only users outside it are split between the
experiment's variants, with a second hash under the experiment's own salt, so a new salt
(a new experiment) reshuffles variants without disturbing the holdout.
"""

from __future__ import annotations

import bisect
import hashlib
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

HOLDOUT = "holdout"
# Never derive this from an experiment: changing it would move the whole holdout group.
HOLDOUT_SALT = "marquee-long-term-holdout"

Objective = Literal["click", "complete", "like", "regret"]
BlendWeight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PromptName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
PromptVersion = Annotated[int, Field(ge=1, strict=True)]


class VariantConfig(BaseModel):
    """What a variant changes; a None/False field leaves the service default in place."""

    # frozen: the assigner hands out shared instances, a caller must not be able to alter
    # the variant every other request gets.
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    # Relative, not a percentage: weights are normalised over the experiment's variants.
    # Ignored for the holdout, whose size is `holdout_share`.
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    blend: dict[Objective, BlendWeight] | None = None
    # MMR lambda_ of the diversity rule: 1 keeps ranker order, lower buys variety.
    diversity_lambda: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    llm_rerank: bool = False
    # Prompt name -> version this variant's LLM steps use instead of the live one (feed
    # re-rank, chat intent, reply, explanations): how product teams A/B-test a prompt.
    # Checked against the prompt registry at start-up (llm.prompt_pins.check_pins).
    prompts: dict[PromptName, PromptVersion] = Field(default_factory=dict)


class ExperimentConfig(BaseModel):
    """One running experiment plus the long-term holdout carved out before it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    # Separate from `name` so a flawed experiment can be restarted with fresh buckets
    # (new salt) while dashboards keep the same experiment name.
    salt: str = Field(min_length=1)
    # Capped at one half: a larger holdout would starve the experiment of traffic.
    holdout_share: float = Field(default=0.05, ge=0, le=0.5)
    holdout: VariantConfig = Field(default_factory=lambda: VariantConfig(name=HOLDOUT))
    variants: list[VariantConfig] = Field(min_length=1)
    control: str

    @model_validator(mode="after")
    def _check_names(self) -> ExperimentConfig:
        if self.salt == HOLDOUT_SALT:
            # The variant hash would then equal the holdout hash, and the variant split of
            # non-held-out users would be skewed (they all hash above holdout_share).
            raise ValueError("salt must differ from the long-term holdout salt")
        if self.holdout.name != HOLDOUT:
            raise ValueError(f"holdout must be named {HOLDOUT!r}, got {self.holdout.name!r}")
        names = [v.name for v in self.variants]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate variant names: {duplicates}")
        if HOLDOUT in names:
            raise ValueError(f"{HOLDOUT!r} is reserved for the long-term holdout, not a variant")
        if self.control not in names:
            raise ValueError(f"control {self.control!r} is not one of the variants {names}")
        return self


DEFAULT_EXPERIMENTS = ExperimentConfig(
    name="feed-v1",
    salt="feed-v1",
    holdout_share=0.05,
    holdout=VariantConfig(name=HOLDOUT),
    variants=[
        VariantConfig(name="control", weight=0.5),
        VariantConfig(name="diverse", weight=0.5, diversity_lambda=0.7),
    ],
    control="control",
)


def load_experiments(path: Path) -> ExperimentConfig:
    """Parse and validate a TOML experiment file; every failure is a ValueError naming `path`.

    One exception type lets the caller report a bad deploy config in one place instead of
    knowing about OSError, TOMLDecodeError and pydantic's ValidationError.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read experiment config {path}: {exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"experiment config {path} is not valid TOML: {exc}") from exc
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid experiment config {path}:\n{exc}") from exc


def _unit_hash(salt: str, user_key: str | int) -> float:
    """Uniform in [0, 1); int 42 and str "42" hash alike so id types can't split a user."""
    digest = hashlib.blake2b(f"{salt}\x00{user_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Assigner:
    """Maps a user key to a variant of one experiment, deterministically."""

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        weights = [v.weight for v in config.variants]
        total = sum(weights)
        cumulative: list[float] = []
        running = 0.0
        for w in weights:
            running += w
            cumulative.append(running / total)
        cumulative[-1] = 1.0  # float rounding must never leave a sliver that maps nowhere
        self._cumulative = cumulative
        self._variants = {v.name: v for v in (config.holdout, *config.variants)}

    @property
    def variants(self) -> dict[str, VariantConfig]:
        """Every variant a user can get, holdout included, keyed by name."""
        return dict(self._variants)

    def assign(self, user_key: str | int) -> VariantConfig:
        if _unit_hash(HOLDOUT_SALT, user_key) < self.config.holdout_share:
            return self.config.holdout
        u = _unit_hash(self.config.salt, user_key)
        index = bisect.bisect_right(self._cumulative, u)
        return self.config.variants[min(index, len(self.config.variants) - 1)]

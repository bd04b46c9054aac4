"""Re-ranking rules: filters, policy, freshness, diversity and exploration.

Each rule implements ranking.base.Rule; build an ItemMeta once per catalog load and
hand it to the rules that read metadata. feed.py builds the feed's pipeline (serving and
evaluation alike).
"""

from ranking.rules.diversity import Diversity, DiversityConfig
from ranking.rules.exploration import Exploration, ExplorationConfig
from ranking.rules.feed import (
    CTR_PRIOR,
    DEFAULT_LAMBDA,
    cold_rules,
    feed_exploration,
    feed_rules,
)
from ranking.rules.freshness import FreshnessBoost, FreshnessConfig
from ranking.rules.genre_filter import GenreFilter
from ranking.rules.meta import ItemMeta
from ranking.rules.pipeline import PipelineResult, RuleFailed, RulePipeline
from ranking.rules.policy import (
    DEFAULT_PROFILES,
    ContentPolicy,
    ContentPolicyConfig,
    MaturityProfile,
)
from ranking.rules.seen import RemoveSeen

__all__ = [
    "CTR_PRIOR",
    "DEFAULT_LAMBDA",
    "DEFAULT_PROFILES",
    "ContentPolicy",
    "ContentPolicyConfig",
    "Diversity",
    "DiversityConfig",
    "Exploration",
    "ExplorationConfig",
    "FreshnessBoost",
    "FreshnessConfig",
    "GenreFilter",
    "ItemMeta",
    "MaturityProfile",
    "PipelineResult",
    "RemoveSeen",
    "RuleFailed",
    "RulePipeline",
    "cold_rules",
    "feed_exploration",
    "feed_rules",
]

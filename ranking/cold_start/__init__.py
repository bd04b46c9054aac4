"""Cold start: what to show a user the personalised models know little or nothing about.

The fallback chain, from least to most known (`ColdStartPolicy.stage` names it):

1. nothing known -> global popularity (`POPULARITY`);
2. demographics -> popularity within the user's demographic cohort (`COHORT`);
3. onboarding picks, or a first few interactions -> neighbours of the picked titles
   and popular films of the picked genres, blended with the cohort's popularity
   (`ONBOARDING_COHORT`), or with global popularity when no demographics are known
   (`ONBOARDING`): a handful of picks says what a user likes but not how mainstream
   they are, and the popularity prior carries that;
4. `full_pipeline_after` interactions -> `FULL_PIPELINE`: the personalised funnel
   has enough history to take over.

Every page may then pass through an exploration hook: a callable, a plain source
whose items take the last slots, or a feed `Rule` such as the Thompson-sampling
`ranking.rules.exploration.Exploration`, which draws from the ranked items below
the page. The policy re-checks the candidate contract after the hook, so a hook
cannot leak a seen item or a duplicate onto the page.

Defaults were chosen by `evaluation.cold_start_eval` on ml-100k, by cross-validation
over the users that the new-user test slice leaves out.
"""

from ranking.cold_start.cohorts import (
    DEMOGRAPHIC_FIELDS,
    CohortConfig,
    CohortKey,
    DemographicCohortSource,
    Demographics,
    demographic_codes,
)
from ranking.cold_start.onboarding import OnboardingConfig, OnboardingPicks, OnboardingSource, mix
from ranking.cold_start.policy import (
    ColdStage,
    ColdStartConfig,
    ColdStartPolicy,
    ExplorationHook,
    RuleExploration,
    SourceExploration,
)

__all__ = [
    "DEMOGRAPHIC_FIELDS",
    "CohortConfig",
    "CohortKey",
    "ColdStage",
    "ColdStartConfig",
    "ColdStartPolicy",
    "DemographicCohortSource",
    "Demographics",
    "ExplorationHook",
    "OnboardingConfig",
    "OnboardingPicks",
    "OnboardingSource",
    "RuleExploration",
    "SourceExploration",
    "demographic_codes",
    "mix",
]

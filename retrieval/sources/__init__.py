"""Candidate sources: each turns a request into up to k unseen raw item ids, best first."""

from retrieval.sources.content import ContentConfig, ContentSource
from retrieval.sources.covisit import CoVisitationSource, CoVisitConfig
from retrieval.sources.popularity import PopularitySource, TrendingConfig, TrendingSource

__all__ = [
    "CoVisitConfig",
    "CoVisitationSource",
    "ContentConfig",
    "ContentSource",
    "PopularitySource",
    "TrendingConfig",
    "TrendingSource",
]

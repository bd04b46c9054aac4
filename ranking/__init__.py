"""Ranking: multi-task ranker, re-ranking rules, cold start and bandits."""

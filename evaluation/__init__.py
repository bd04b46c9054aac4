"""Split protocols, metrics, baselines and reports: every stage measured the same way."""

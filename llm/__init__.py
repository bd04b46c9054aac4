"""LLM client, prompts, intent parsing, LLM re-rank and explanations."""

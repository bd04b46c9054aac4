"""Who is calling and what they may do: scoped API keys, end-user tokens, UI accounts,
rate limits, and the checks that refuse an unsafe exposure."""

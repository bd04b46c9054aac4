"""Candidate generation: two-tower model, text encoder, ANN index, candidate sources."""

"""Composition root: settings, CLI and (later) the FastAPI app."""

"""Gradio UI: chat, feed and prompt lab."""

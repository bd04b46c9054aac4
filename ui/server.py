"""The whole product in one ASGI app: the feed API with the UI mounted at /ui.

Why here: the UI is the top layer. It builds on the API (`app.api.create_app`), and the
API never imports the UI, so the API can be served, tested and scaled on its own.
`marquee serve` runs this factory.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.api import create_app as create_api
from app.service import Service
from app.settings import Settings


def create_app(service: Service | None = None, settings: Settings | None = None) -> FastAPI:
    from ui.app import mount_ui  # Gradio is slow to import: only when an app is built

    return create_api(service, settings, mount=mount_ui)

"""The Gradio chat page and the HTTP API mount: thin layers over `assistant.Assistant`."""
from __future__ import annotations

__all__ = ["build_app", "launch", "serve", "RunningServer"]


def __getattr__(name: str):
    if name == "build_app":
        # Lazy to keep start-up fast: `import ui` must not pull in Gradio for commands that never serve.
        from ui.app import build_app
        return build_app
    if name in ("launch", "serve", "RunningServer"):
        # Lazy for the same reason: ui.server imports Gradio and uvicorn.
        from ui import server
        return getattr(server, name)
    raise AttributeError(name)

"""The Gradio chat page and the HTTP API mount: thin layers over `assistant.Assistant`."""
from __future__ import annotations

__all__ = ["build_app", "launch", "serve", "RunningServer"]


def __getattr__(name: str):
    # Imported lazily: `import ui` must not pull in Gradio for commands that never serve.
    if name == "build_app":
        from ui.app import build_app
        return build_app
    if name in ("launch", "serve", "RunningServer"):
        from ui import server
        return getattr(server, name)
    raise AttributeError(name)

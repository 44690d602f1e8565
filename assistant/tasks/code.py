"""Placeholder while the code task is written."""
from __future__ import annotations


def run(ctx, req):
    raise NotImplementedError("the code task is being written")
    yield

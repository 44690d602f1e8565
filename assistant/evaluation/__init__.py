"""Measuring what users see: answers against acceptable strings, summaries against references.

`assistant eval answers --qa FILE` and `assistant eval summaries --set FILE` run these on a
user's own question files; `index.evaluation` measures retrieval alone.
"""

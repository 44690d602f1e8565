"""What a non-reader must never see of the collections fixture (tests/fixtures/collections), and how to look.

Shared by the collection attack suites: the same marks, the same search, so "0 leaks" means one thing.
"""
from __future__ import annotations

import json

# Anything of the salary bands a non-reader could be shown: words, numbers, its title and file name.
SALARY_MARKS = ["ZEPHYRQUILL", "118,000", "91,000", "band E5", "27 days", "Salary bands", "salary-bands"]
INCIDENT_MARKS = ["MARMOTFALCON", "4711", "03:12", "write-ahead", "incident-4711", "database failover"]


def leaks(payload, marks: list[str] = SALARY_MARKS) -> list[str]:
    """The marks found anywhere in a response (its text, sources, titles, paths), case-insensitively."""
    text = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).lower()
    return [m for m in marks if m.lower() in text]

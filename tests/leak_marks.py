"""What a non-reader must never see of the collections fixture (tests/fixtures/collections), and how to look.

Shared by the collection attack suites: the same marks, the same search, so "0 leaks" means one thing.
"""
from __future__ import annotations

import json
import re

# Anything of the salary bands a non-reader could be shown: words, numbers, its title and file name.
SALARY_MARKS = ["ZEPHYRQUILL", "118,000", "91,000", "band E5", "27 days", "Salary bands", "salary-bands"]
INCIDENT_MARKS = ["MARMOTFALCON", "4711", "03:12", "write-ahead", "incident-4711", "database failover"]


def leaks(payload, marks: list[str] = SALARY_MARKS) -> list[str]:
    """The marks found anywhere in a response (its text, sources, titles, paths), case-insensitively.

    A mark counts only where it is not part of a longer run of letters and digits: a response's random
    ids ("chatcmpl-b451e6a5fa744711914ec227") hold "4711" by chance now and then, a leak never only so.
    """
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return [m for m in marks if re.search(rf"(?<![^\W_]){re.escape(m)}(?![^\W_])", text, re.IGNORECASE)]

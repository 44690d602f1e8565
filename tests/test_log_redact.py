"""Redaction: personal data and secrets are scrubbed; ordinary technical prose survives."""
from __future__ import annotations

import pytest

from assistant.log.redact import redact, redact_value


@pytest.mark.parametrize("text, placeholder, gone", [
    ("write to bob.smith+ops@example.co.uk today", "[EMAIL]", "bob.smith"),
    ("call +44 20 7946 0958 now", "[PHONE]", "7946"),
    ("call (555) 123-4567", "[PHONE]", "123-4567"),
    ("call 555-123-4567", "[PHONE]", "555-123"),
    ("call 555.123.4567", "[PHONE]", "555.123"),
    ("Tel. 030 1234567", "[PHONE]", "1234567"),
    ("OPENAI_API_KEY is sk-proj-Ab3dEfGhIjKlMnOpQrStUv", "[SECRET]", "sk-proj"),
    ("key sk-ant-api03-abcdefghijklmnopqrstuv", "[SECRET]", "sk-ant"),
    ("aws AKIAIOSFODNN7EXAMPLE id", "[SECRET]", "AKIA"),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 here", "[SECRET]", "ghp_"),
    ("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "[SECRET]", "github_pat"),
    ("slack xoxb-123456789012-abcdefghijkl", "[SECRET]", "xoxb"),
    ("sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "[SECRET]", "9f86d08"),
    ("bearer dGhpcyBpcyBhIHNlY3JldCB0b2tlbiAxMjM0NTY3ODkw==", "[SECRET]", "dGhpcy"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "[SECRET]", "eyJ"),
    ("password: hunter2", "[SECRET]", "hunter2"),
    ("api_key='abc123xyz'", "[SECRET]", "abc123xyz"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "[SECRET]", "MIIEow"),
])
def test_scrubs(text, placeholder, gone):
    out = redact(text)
    assert placeholder in out and gone not in out


@pytest.mark.parametrize("text", [
    "How do I rotate keys in v2.4.1?",
    "Released on 2026-11-28; 1,000,000 users; port 8080; error 404",
    "Set max_new_tokens = 256 and top_k = 4",
    "see /usr/lib/postgresql/15/bin/pg_ctl and docs/install-guide-2024.md",
    "IP 192.168.1.10 and version 3.14159",
    "Kubernetes-Cluster-Autoscaler-v2-configuration-reference",
    "如何轮换密钥？请参阅第 3 页。",
    "",
])
def test_keeps_ordinary_text(text):
    assert redact(text) == text


def test_none_and_nested_values():
    assert redact(None) is None
    assert redact_value({"api_key": "sk-abcdefghijklmnopqrstuvwx", "n": 3, "stop": ["a@b.io"]}) == \
        {"api_key": "[SECRET]", "n": 3, "stop": ["[EMAIL]"]}

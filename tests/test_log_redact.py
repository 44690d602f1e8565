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


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"


@pytest.mark.parametrize("text, gone, kept", [
    # AWS secret access keys: by name, in prose, next to their key id.
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_access_key = [SECRET]"),
    (f"export AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET, "AWS_SECRET_ACCESS_KEY=[SECRET]"),
    (f'{{"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": "{AWS_SECRET}"}}', AWS_SECRET, '"SecretAccessKey": "[SECRET]"'),
    (f"Use the secret key {AWS_SECRET} with it.", AWS_SECRET, "secret key [SECRET] with it."),
    (f"the pair is AKIAIOSFODNN7EXAMPLE {AWS_SECRET}", "wJalr", "the pair is [SECRET] [SECRET]"),
    (f"bob,,AKIAIOSFODNN7EXAMPLE,{AWS_SECRET}", "wJalr", "bob,,[SECRET],[SECRET]"),
    # Passwords inside URLs: scheme, user and host stay.
    ("postgresql+psycopg://admin:Sup3rPgPass@db/assistant", "Sup3rPgPass", "postgresql+psycopg://admin:[SECRET]@db/assistant"),
    ("redis://:S3cretRedis@cache:6379/0", "S3cretRedis", "redis://:[SECRET]@cache:6379/0"),
    ("mongodb+srv://app:p%40ss%2Fw0rd@cluster0.example.net/test", "p%40ss", "mongodb+srv://app:[SECRET]@cluster0.example.net/test"),
    ("https://bob:hunter2@git.example.com/repo.git", "hunter2", "https://bob:[SECRET]@git.example.com/repo.git"),
    ("curl -u admin:Sup3rPgPass https://x", "Sup3rPgPass", "-u admin:[SECRET]"),
    ("assistant serve --auth admin:Sup3rPgPass", "Sup3rPgPass", "--auth admin:[SECRET]"),
    # Authorization headers.
    ("curl -H 'Authorization: Basic YWRtaW46U3VwM3JQZ1Bhc3M=' https://api", "YWRtaW46", "Authorization: Basic [SECRET]'"),
    ("Authorization: Bearer abc123def456ghi789", "abc123", "Authorization: Bearer [SECRET]"),
    ("send Bearer 4f9a2c1e.b7d3 with the request", "4f9a2c1e", "send Bearer [SECRET] with"),
    ("X-Api-Key: q1w2e3r4t5y6u7i8", "q1w2e3", "X-Api-Key: [SECRET]"),
    # Private key blocks, whole, cut off, encrypted, and inside a service-account JSON.
    (f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----\nafter", PEM_BODY, "[SECRET]\nafter"),
    (f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\nAB12cd\n\nThanks for v2.4.1", "AB12cd", "[SECRET]\n\nThanks for v2.4.1"),
    (f"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,8A5B6C7D\n\n{PEM_BODY}", "DEK-Info", "[SECRET]"),
    ('{"type": "service_account", "private_key_id": "a1b2c3d4e5f6", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
     + PEM_BODY + '\\n-----END PRIVATE KEY-----\\n"}', PEM_BODY, '"private_key_id": "[SECRET]", "private_key": "[SECRET]'),
    ('"private_key": "-----BEGIN PRIVATE KEY-----\\n' + PEM_BODY + '\\nShort1Line', "Short1Line", '"private_key": "[SECRET]'),
    # Generic assignments: env, JSON, YAML, query strings, config files, XML, prose.
    ("DB_PASSWORD=hunter2", "hunter2", "DB_PASSWORD=[SECRET]"),
    ("PGPASSWORD=Sup3rPgPass psql -h db", "Sup3rPgPass", "PGPASSWORD=[SECRET] psql -h db"),
    ('{"password": "two words", "user": "ann"}', "two words", '{"password": "[SECRET]", "user": "ann"}'),
    ("db:\n  password: hunter\n  user: admin", "hunter", "  password: [SECRET]\n  user: admin"),
    ("client_secret: 'abc-def-123'", "abc-def", "client_secret: '[SECRET]'"),
    ("https://api.example.com/items?api_key=abc123def&limit=10&access_token=x9Yz1234", "abc123def", "?api_key=[SECRET]&limit=10&access_token=[SECRET]"),
    ("spring.datasource.password=Sup3rPgPass", "Sup3rPgPass", "spring.datasource.password=[SECRET]"),
    ("const dbPassword = 'Sup3rPgPass';", "Sup3rPgPass", "dbPassword = '[SECRET]'"),
    ("password => 'hunter2'", "hunter2", "password => '[SECRET]'"),
    ("<password>hunter2</password>", "hunter2", "<password>[SECRET]</password>"),
    ("my password is hunter22, please reset it", "hunter22", "my password is [SECRET], please"),
    ("secret_key_base: 0123abcdEFGH4567ijkl", "0123abcd", "secret_key_base: [SECRET]"),
    # Azure: storage keys, SAS signatures, client secrets.
    (f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net",
     "Eby8vdM0", "AccountKey=[SECRET];EndpointSuffix=core.windows.net"),
    ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=Ab12Cd34Ef56Gh78Ij90Kl12=",
     "Ab12Cd34", "SharedAccessKeyName=Root;SharedAccessKey=[SECRET]"),
    ("https://acct.blob.core.windows.net/c/f.pdf?sv=2022-11-02&se=2026-12-31T00:00:00Z&sig=Xy7%2BabcDEF123%3D", "Xy7%2B",
     "?sv=2022-11-02&se=2026-12-31T00:00:00Z&sig=[SECRET]"),
    ("SharedAccessSignature sr=ns&sig=Ab12Cd%2B34Ef%3D&se=1700000000&skn=Root", "Ab12Cd", "&sig=[SECRET]&se=1700000000"),
    ("the client secret is abc8Q~aBcDeFgHiJkLmNoPqRsTuVwXyZ012345 ok", "abc8Q~", "is [SECRET] ok"),
    (f"a standalone key {AZURE_KEY} here", "Eby8vdM0", "a standalone key [SECRET] here"),
    # Vendor shapes.
    ("stripe sk_live_51H8abcdefghijklmnopqrstuvwxyz and rk_live_51H8abcdefghijkl", "_live_", "stripe [SECRET] and [SECRET]"),
    ("hook whsec_abcdefghijklmnopqrstuvwxyz123456", "whsec_", "hook [SECRET]"),
    ("GOCSPX-abcdefghijklmnopqrstuvwxyz12 ya29.a0AfH6SMBabcdefghijklmnop", "GOCSPX", "[SECRET] [SECRET]"),
    ("hf hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "hf_", "hf [SECRET]"),
    ("npm_abcdefghijklmnopqrstuvwxyz0123456789", "npm_", "[SECRET]"),
    ("pypi-AgEIcHlwaS5vcmcCJGFiY2RlZmdoLWlqa2wtbW5vcC1xcnN0LXV2d3h5ejAxMjM0", "pypi-", "[SECRET]"),
    ("SG.abcdefghijklmnopqrstuv.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "SG.", "[SECRET]"),
    ("post to https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX now", "T0000", "post to [SECRET] now"),
    ("dapi0123456789abcdef0123456789abcdef", "dapi", "[SECRET]"),
])
def test_scrubs_credentials_and_keeps_their_structure(text, gone, kept):
    out = redact(text)
    assert gone not in out and kept in out, out


@pytest.mark.parametrize("text", [
    # prose, paths, URLs without passwords, versions and dates
    "The access token expires after 3600 seconds; the secret key rotation is monthly.",
    "How do I configure the password policy for version 2.4? See docs/security.md section 3.",
    "Reset your password: go to settings and click reset.",
    "The Basic plan includes Bearer tokens for authentication; passwordless login via WebAuthn.",
    "password hashing uses argon2id by default",
    "See src/main/java/com/example/Application.java and com/example/MyVeryLongControllerName2Test3",
    "Visit http://localhost:7860/ or https://example.com/search?q=rotate+keys&page=2#top",
    "clone https://git@github.com/org/repo.git or ssh://git@github.com:22/org/repo",
    "Run `pip install transformers==4.44.2` then `python -m assistant.cli ingest docs/`.",
    "assistant serve --api-key KEY:USER --auth USER:PASS (DATABASE_URL=postgresql://user:<password>@host/db)",
    # code that names secrets without holding one
    "password = get_password()",
    "token: str | None = None",
    "def login(user: str, password: str) -> bool:",
    "login(user=user, password=password); if token == expected: pass",
    "api_key = settings.api_key; self.api_key = api_key; key = os.environ[\"API_KEY\"]",
    "tokenizer.pad_token = tokenizer.eos_token; tokenizer.pad_token = \"<pad>\"",
    "headers = {\"Authorization\": f\"Bearer {token}\"}",
    "password: ${DB_PASSWORD} and token = \"****\"",
    "class TokenBucket: def get_secret_value(self): return self._secret",
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


def test_a_value_under_a_secret_name_goes_whatever_it_looks_like():
    assert redact_value({"openai_api_key": "abc", "headers": {"X-Auth-Token": "xyz"}, "max_tokens": 5,
                         "pad_token": "<pad>"}) == \
        {"openai_api_key": "[SECRET]", "headers": {"X-Auth-Token": "[SECRET]"}, "max_tokens": 5, "pad_token": "<pad>"}


def test_redacting_twice_changes_nothing_more():
    text = f"aws_secret_access_key = {AWS_SECRET}; postgresql://a:Sup3r@db/x; password: hunter2"
    assert redact(redact(text)) == redact(text)


@pytest.mark.parametrize("unit", ["a.", "a@", "://", "1 ", "password:", "-----BEGIN PRIVATE KEY-----\n", "a_"])
def test_time_grows_linearly_with_hostile_input(unit):
    """Every message passes through here: a pattern that backtracks quadratically would let one
    pasted blob stall the log writer."""
    import time

    text = unit * (100_000 // len(unit))
    start = time.perf_counter()
    redact(text)
    assert time.perf_counter() - start < 5

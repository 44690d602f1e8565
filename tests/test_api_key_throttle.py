"""API keys cannot be guessed at network speed, and a guessable key is refused at start-up.

Issue 25, hole 4: 50 wrong keys took 0.18 s and none was throttled; `assistant serve --api-key
K:alice` started without a word. Replayed against a real server over HTTP (httpx) and the CLI.
"""
from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from ui.login_limit import LoginThrottle
from ui.security import AuthConfigError, parse_api_keys
from ui.server import launch

GOOD = "alice-key-5b1f9c2e7d4a8f03"  # 26 characters: long enough to be served
KEYGEN = "secrets.token_urlsafe(32)"


def _models(srv, key: str | None = None, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if forwarded_for:  # what a reverse proxy on 127.0.0.1 says about its client
        headers["X-Forwarded-For"] = forwarded_for
    return httpx.get(f"{srv.url}/v1/models", headers=headers, timeout=30)


def test_wrong_keys_are_throttled_per_address_and_the_right_key_waits_out_the_lockout(demo_bot):
    # a lockout long enough that 20 guesses fit in it on a busy machine (3 s did not, with other jobs running)
    srv = launch(demo_bot, port=0, api_keys=[f"{GOOD}:alice"], api_key_throttle=LoginThrottle(lockout_s=8))
    try:
        assert all(_models(srv).status_code == 401 for _ in range(8))  # no key at all guesses nothing
        codes = [_models(srv, f"guess-{i:02d}-5b1f9c2e7d4a").status_code for i in range(20)]
        assert codes == [401] * 5 + [429] * 15

        locked = _models(srv, GOOD)
        assert locked.status_code == 429, locked.text  # the right key too, or guessing would go on
        error = locked.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and "Too many wrong API keys" in error["message"]
        wait = int(locked.headers["retry-after"])
        assert 1 <= wait <= 9

        assert _models(srv, GOOD, forwarded_for="203.0.113.9").status_code == 200  # another client is not locked
        time.sleep(wait)
        ok = _models(srv, GOOD)
        assert ok.status_code == 200 and "base" in [m["id"] for m in ok.json()["data"]]
    finally:
        srv.close()


def test_the_default_limit_is_five_wrong_keys_then_minutes(demo_bot):
    srv = launch(demo_bot, port=0, api_keys=[f"{GOOD}:alice"])
    try:
        codes = [_models(srv, f"{GOOD}x{i}").status_code for i in range(6)]
        assert codes == [401] * 5 + [429]
        assert 240 < int(_models(srv, GOOD).headers["retry-after"]) <= 301
    finally:
        srv.close()


@pytest.mark.parametrize("source", ["--api-key", "ASSISTANT_API_KEYS", "file"])
def test_short_keys_are_refused_from_every_source_with_how_to_make_one(source, tmp_path):
    short = "K1-5b1f9c2e7d4"  # 14 characters
    args, env, keys_file = [], {}, None
    if source == "--api-key":
        args = [f"{short}:alice"]
    elif source == "ASSISTANT_API_KEYS":
        env = {"ASSISTANT_API_KEYS": f"{GOOD}:bob,{short}:alice"}
    else:
        keys_file = tmp_path / "keys"
        keys_file.write_text(f"{GOOD}:bob\n{short}:alice\n")
    with pytest.raises(AuthConfigError) as refused:
        parse_api_keys(args, env=env, keys_file=keys_file)
    message = str(refused.value)
    assert "at least 16" in message and KEYGEN in message and short not in message
    assert parse_api_keys([f"{short}-more:alice"], env={}) == {f"{short}-more": "alice"}  # 19 characters


def test_serve_with_a_one_character_key_stops_before_serving(tmp_path):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "assistant.cli", "--workspace", str(tmp_path / "ws"), "serve",
                          "--api-key", "K:alice", "--port", "0"], capture_output=True, text=True, timeout=90)
    assert out.returncode == 2, (out.stdout[-500:], out.stderr[-500:])
    assert "--api-key" in out.stderr and "too short (length 1); use at least 16" in out.stderr and KEYGEN in out.stderr
    assert "running at" not in out.stdout and time.perf_counter() - start < 20

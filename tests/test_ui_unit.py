"""The UI's rules without a server: upload names, sizes and types, logins, API keys, rendering."""
from __future__ import annotations

import html
import re

import pytest

from assistant.types import Answer, SentenceCheck, Source
from ui import limits, render
from ui.login_limit import LoginThrottle
from ui.security import (
    AuthConfigError, UploadPolicy, UploadRejected, api_key_user, check_api_key, check_login, discard_upload,
    exposure_warnings, parse_api_keys, parse_auth, parse_groups, resolve_access, safe_filename, save_upload,
)


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd.md", "passwd.md"),
    ("..\\..\\windows\\evil.txt", "evil.txt"),
    ("/abs/path/notes.md", "notes.md"),
    ("report (final).pdf", "report _final_.pdf"),
    ("...hidden.md", "hidden.md"),
])
def test_safe_filename_drops_directories_and_odd_characters(name, expected):
    assert safe_filename(name) == expected


@pytest.mark.parametrize("name", ["..", "../", "", "/"])
def test_safe_filename_refuses_names_with_nothing_left(name):
    with pytest.raises(UploadRejected):
        safe_filename(name)


def test_upload_with_traversal_name_lands_inside_uploads(tmp_path):
    policy = UploadPolicy.for_workspace(tmp_path / "ws")
    src = tmp_path / "src.md"
    src.write_text("# Notes\nhello")
    dest = save_upload(src, "../../outside.md", policy)
    assert dest == policy.root / "outside.md" and dest.read_text() == "# Notes\nhello"
    assert not (tmp_path / "outside.md").exists() and not (tmp_path / "ws" / "outside.md").exists()


def test_oversized_and_wrong_type_uploads_are_refused_and_nothing_is_written(tmp_path):
    policy = UploadPolicy.for_workspace(tmp_path / "ws", max_bytes=1000)
    big = tmp_path / "big.md"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(UploadRejected, match="over the"):
        save_upload(big, "big.md", policy)
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    with pytest.raises(UploadRejected, match="not accepted"):
        save_upload(exe, "tool.exe", policy)
    assert not policy.root.exists() or not any(policy.root.iterdir())


def test_reupload_replaces_the_file(tmp_path):
    policy = UploadPolicy.for_workspace(tmp_path / "ws")
    src = tmp_path / "a.md"
    src.write_text("one")
    save_upload(src, "a.md", policy)
    src.write_text("two")
    assert save_upload(src, "a.md", policy).read_text() == "two"
    assert [p.name for p in policy.root.iterdir()] == ["a.md"]  # no temporary files left behind


def test_auth_from_pairs_strings_and_file(tmp_path):
    creds = tmp_path / "users.txt"
    # a password holding ':' ends with ':' (an empty group list): the last ':' starts the groups
    creds.write_text("# team\ncarol:pw:with:colons:\ndan:pw2:hr,on-call\n\n")
    pairs = parse_auth(["alice:a1", ("bob", "b2")], creds)
    assert pairs == [("alice", "a1"), ("bob", "b2"), ("carol", "pw:with:colons"), ("dan", "pw2")]
    assert check_login(pairs, "carol", "pw:with:colons")
    assert parse_groups(["erin:pw:eng"], creds) == {"dan": frozenset({"hr", "on-call"}), "erin": frozenset({"eng"})}
    with pytest.raises(AuthConfigError, match="trailing|end the line"):
        parse_auth(["frank:pass:word with space"])
    assert not check_login(pairs, "alice", "b2") and not check_login(pairs, "mallory", "")


@pytest.mark.parametrize("bad", [["nocolon"], [":pw"], ["user:"], ["a:1", "a:2"]])
def test_bad_auth_is_a_clear_error(bad):
    with pytest.raises(AuthConfigError):
        parse_auth(bad)


def test_missing_credentials_file_is_an_error(tmp_path):
    with pytest.raises(AuthConfigError, match="does not exist"):
        parse_auth(None, tmp_path / "nope.txt")


def test_share_without_auth_is_refused_unless_allowed():
    with pytest.raises(AuthConfigError, match="refusing to share"):
        resolve_access(share=True, env={})
    assert not resolve_access(share=True, allow_public_share=True, env={}).auth_on
    assert resolve_access(share=True, auth=["a:b"], env={}).auth_on


K1, K2, K3 = "k1-5b1f9c2e7d4a8f03", "k2-9c2e5b1f03a8d47f", "k3-7d4a8f035b1f9c2e"  # served keys have 16+ characters


def test_api_keys_from_argument_environment_and_file_each_act_as_a_user(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# service accounts\n{K3}:reports-bot\n\nk:with:colons-5b1f:carol\n")
    keys = parse_api_keys([f"{K1}:alice"], env={"ASSISTANT_API_KEYS": f"{K2}:bob, {K1}:alice ,"}, keys_file=keys_file)
    assert keys == {K1: "alice", K2: "bob", K3: "reports-bot", "k:with:colons-5b1f": "carol"}
    assert api_key_user(keys, f"Bearer {K2}") == "bob" and api_key_user(keys, f"bearer {K1}") == "alice"
    assert api_key_user(keys, "Bearer k:with:colons-5b1f") == "carol"
    assert api_key_user(keys, f"Bearer {K3}x") is None and api_key_user(keys, K1) is None
    assert api_key_user(keys, None) is None
    assert check_api_key(keys, f"Bearer {K3}") and not check_api_key(keys, "Bearer alice")
    bare = parse_api_keys([K1], env={})  # README's `--api-key KEY`: its own user, the key not revealed
    assert list(bare) == [K1] and bare[K1].startswith("api-") and K1 not in bare[K1]
    policy = resolve_access(api_keys=[f"{K1}:u"], env={})
    assert policy.api_needs_key and not policy.auth_on
    assert resolve_access(auth=["u:p"], env={}).api_needs_key


@pytest.mark.parametrize("entries, why", [([f"{K1}:alice", f"{K1}:bob"], "already given"), ([":alice"], "KEY:USER"),
                                          (["k 1:alice"], "KEY:USER"), ([f"{K1}:"], "KEY:USER")])
def test_bad_api_keys_are_clear_errors(entries, why):
    with pytest.raises(AuthConfigError, match=why):
        parse_api_keys(entries, env={})


def test_missing_api_keys_file_is_an_error(tmp_path):
    with pytest.raises(AuthConfigError, match="does not exist"):
        resolve_access(api_keys_file=tmp_path / "nope.txt", env={})


def test_an_open_non_loopback_host_gets_a_warning_that_says_who_can_read_what():
    (line,) = exposure_warnings("0.0.0.0", 7860, resolve_access(env={}))
    assert "anyone who can reach 0.0.0.0:7860 on this network can read every ingested document" in line
    assert "/v1 without a key" in line
    assert exposure_warnings("127.0.0.1", 7860, resolve_access(env={})) == []
    assert exposure_warnings("0.0.0.0", 7860, resolve_access(auth=["a:b"], env={})) == []


def test_refused_uploads_are_deleted_but_nothing_outside_the_folder(tmp_path):
    cache = tmp_path / "gradio-cache"
    (cache / "3f2a").mkdir(parents=True)
    refused = cache / "3f2a" / "tool.exe"
    refused.write_bytes(b"MZ")
    outside = tmp_path / "keep.md"
    outside.write_text("mine")
    assert discard_upload(refused, cache) and not refused.exists() and not (cache / "3f2a").exists()
    assert not discard_upload(outside, cache) and outside.exists()
    assert not discard_upload(cache / ".." / "keep.md", cache) and outside.exists()


def _answer(**kw) -> Answer:
    src = Source(path="/d/guide.md", title="Guide <b>", locator="§ Install", snippet="pip install it",
                 score=0.7, text="First: pip install it now. Then <script>alert(1)</script> run.")
    base = dict(text="Install with pip [1]. The moon is cheese.", sources=[src],
                sentences=[SentenceCheck("Install with pip [1].", [1], True), SentenceCheck("The moon is cheese.", [], False)])
    base.update(kw)
    return Answer(**base)


def test_answer_marks_unsupported_sentences_and_escapes_sources():
    md = render.answer_markdown(_answer())
    assert '<mark class="unsupported"' in md and "The moon is cheese.</mark>" in md
    assert "Install with pip [1]." in md and "<mark class=\"unsupported\" title=\"Not supported by the cited passages: check the sources\">Install" not in md
    assert "<script>" not in md and "&lt;script&gt;" in md  # passage text is escaped
    assert "Guide &lt;b&gt;" in md and "<span class=\"src-hit\">pip install it</span>" in md  # snippet highlighted in context
    assert md.count('<details class="source">') == 1


def test_a_passage_with_markdown_stays_text_inside_its_source():
    """A passage's backticks, stars, blank lines and $ signs must not become code, emphasis, new
    blocks or LaTeX across the source's HTML (seen: raw "</span>" and "&quot;" on the page)."""
    text = 'Use `--api-key KEY:USER` or *env*:\n\n- `ASSISTANT_API_KEYS="K:alice"`\n\n# not a heading, $5 $x$ | a'
    src = Source(path="/d/api_keys.md", title="API *keys*", locator="§ Keys", snippet="`--api-key KEY:USER`",
                 score=0.5, text=text)
    html_text = render.source_html(1, src)
    inner = html_text.split('<div class="src-passage">', 1)[1]
    passage = inner.split("</div></details>")[0]
    assert not any(c in re.sub(r"&#?\w+;", "", passage) for c in "`*\n$#_|")
    assert '<span class="src-hit">&#96;--api-key KEY:USER&#96;</span>' in inner
    assert "API &#42;keys&#42;" in html_text and "/d/api&#95;keys.md" in html_text
    assert html.unescape(passage.replace('<span class="src-hit">', "").replace("</span>", "")) == text


def test_code_answers_are_not_marked():
    ans = _answer(task="code", text="```python\nprint(1)\n```", sentences=[SentenceCheck("print(1)", [], False)])
    assert "<mark" not in render.mark_unsupported(ans)


def test_source_dicts_never_use_a_path_key():
    # gradio_client downloads any dict with a "path" key: the API must not return one.
    d = render.answer_dict(_answer())
    assert all("path" not in s and s["file"] == "/d/guide.md" for s in d["sources"])
    assert d["unsupported_sentences"] == ["The moon is cheese."] and d["supported"] is False


def test_server_folders_are_refused_on_a_shared_server(tmp_path):
    from ui.app import ChatHandlers

    uploads = UploadPolicy.for_workspace(tmp_path / "ws")
    shared = ChatHandlers(bot=None, uploads=uploads, allow_folders=False, folder_roots=[tmp_path / "allowed"])
    (tmp_path / "allowed" / "docs").mkdir(parents=True)
    with pytest.raises(PermissionError, match="upload files instead"):
        shared.check_folder("/etc")
    assert shared.check_folder(str(tmp_path / "allowed" / "docs")) == (tmp_path / "allowed" / "docs").resolve()
    local = ChatHandlers(bot=None, uploads=uploads, allow_folders=True)
    with pytest.raises(FileNotFoundError):
        local.check_folder(str(tmp_path / "missing"))


def test_http_api_and_model_choices_load_without_gradio():
    """Services that only speak HTTP must not need Gradio: ui.api imports with Gradio blocked."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['gradio'] = None\n"
            "import ui.api, ui.model_choice\n"
            "assert 'gradio' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
            "print(','.join(ui.api.TASK_CHOICES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "auto,qa,summarize,code"


def test_model_choices_map_selector_names_to_model_arguments():
    from ui.model_choice import current_model, model_arg, model_choices

    class Bot:  # the two facade members the selector reads, with a fine-tune being served
        model_name = "ft-1"
        config = type("C", (), {"generator": "smollm2"})()

        def models(self):
            return ["base", "ft-1", "ft-2"]

    bot = Bot()
    assert model_choices(bot) == ["base", "ft-1", "ft-2"] and current_model(bot) == "ft-1"
    assert model_arg(bot, "ft-1") is None and model_arg(bot, None) is None  # the served one
    assert model_arg(bot, "base") == "smollm2" and model_arg(bot, "ft-2") == "ft-2"


@pytest.mark.parametrize("check, value, param, message", [
    (limits.check_k, 10**9, "k", "k must be a whole number from 1 to 50"),
    (limits.check_k, 0, "k", "from 1 to 50"),
    (limits.check_k, 2.5, "k", "whole number"),
    (limits.check_k, True, "k", "whole number"),
    (limits.check_temperature, 1e308, "temperature", "temperature must be a number from 0 to 2"),
    (limits.check_temperature, float("nan"), "temperature", "from 0 to 2"),
    (limits.check_temperature, -0.1, "temperature", "from 0 to 2"),
    (limits.check_top_p, 0, "top_p", "above 0 and at most 1"),
    (limits.check_top_p, 1.5, "top_p", "above 0 and at most 1"),
    (limits.check_max_tokens, 0, "max_tokens", "max_tokens must be a whole number from 1"),
    (limits.check_max_tokens, 10**20, "max_tokens", "from 1 to 8192"),
    (limits.check_stop, ["a", "b", "c", "d", "e"], "stop", "at most 4"),
    (limits.check_stop, [""], "stop", "1 to 200 characters"),
    (limits.check_stop, 5, "stop", "string or a list of strings"),
    (limits.check_rating, "x", "rating", "rating must be -1, 0 or 1 (got 'x')"),
    (limits.check_rating, 5, "rating", "rating must be -1, 0 or 1"),
    (limits.check_search_mode, "fuzzy", "mode", "mode must be one of hybrid, dense, keyword"),
])
def test_limits_refuse_out_of_range_values_naming_the_field(check, value, param, message):
    with pytest.raises(limits.InvalidParam, match=re.escape(message)) as info:
        check(value)
    assert info.value.param == param


def test_limits_pass_good_values_through_normalised():
    assert (limits.check_k(5), limits.check_k(5.0), limits.check_k("7")) == (5, 5, 7)
    assert limits.check_temperature(0) == 0.0 and limits.check_temperature(2) == 2.0
    assert limits.check_top_p(1) == 1.0 and limits.check_max_tokens(8192) == 8192
    assert limits.check_stop("END") == ["END"] and limits.check_stop(None) == []
    assert [limits.check_rating(r) for r in (-1, 0, 1, "1")] == [-1, 0, 1, 1]


def test_login_throttle_locks_an_address_after_five_failures_and_only_that_one():
    now = [1000.0]
    throttle = LoginThrottle(max_failures=5, window_s=60, lockout_s=300, clock=lambda: now[0])
    for _ in range(4):
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == pytest.approx(300)
    assert throttle.retry_after("10.0.0.2") == 0  # other clients are not punished
    now[0] += 301
    assert throttle.retry_after("10.0.0.1") == 0
    for _ in range(4):  # failures spread wider than the window never add up to a lockout
        throttle.failed("10.0.0.3")
        now[0] += 61
    throttle.failed("10.0.0.3")
    assert throttle.retry_after("10.0.0.3") == 0

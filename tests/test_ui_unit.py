"""The UI's rules without a server: upload names, sizes and types, logins, API keys, rendering."""
from __future__ import annotations

import pytest

from assistant.types import Answer, SentenceCheck, Source
from ui import render
from ui.security import (
    AuthConfigError, UploadPolicy, UploadRejected, check_api_key, check_login, parse_api_keys, parse_auth,
    resolve_access, safe_filename, save_upload,
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
    creds.write_text("# team\ncarol:pw:with:colons\n\n")
    pairs = parse_auth(["alice:a1", ("bob", "b2")], creds)
    assert pairs == [("alice", "a1"), ("bob", "b2"), ("carol", "pw:with:colons")]
    assert check_login(pairs, "carol", "pw:with:colons")
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


def test_api_keys_from_argument_and_environment():
    keys = parse_api_keys(["k1"], env={"ASSISTANT_API_KEYS": "k2, k1 ,"})
    assert keys == ["k1", "k2"]
    assert check_api_key(keys, "Bearer k2") and check_api_key(keys, "bearer k1")
    assert not check_api_key(keys, "Bearer k3") and not check_api_key(keys, "k1") and not check_api_key(keys, None)
    policy = resolve_access(api_keys=["k"], env={})
    assert policy.api_needs_key and not policy.auth_on
    assert resolve_access(auth=["u:p"], env={}).api_needs_key


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
            "print(','.join(ui.api.TASK_NAMES))")
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

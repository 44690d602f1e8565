"""Sentence splitting, citation parsing and the support check that decides what an answer may claim."""
from __future__ import annotations

import pytest

from assistant import grounding as g

PASSAGE = ("API keys are rotated with the command `acme keys rotate`. Rotation creates a new key, keeps the "
           "old key valid for 24 hours, and then revokes it.")
OTHER = "On Windows, download the installer acme-setup.exe and run it as administrator."


@pytest.fixture(scope="module")
def embed():
    from doubles import default_models

    _, embedder = default_models()
    return lambda texts: embedder.encode(texts, normalize_embeddings=True, show_progress_bar=False)


def test_split_english_keeps_citations_abbreviations_and_numbers():
    text = "Run `acme keys rotate` [1]. It takes e.g. 3.5 seconds. [2]\n1. Edit install.md first.\nDone!"
    assert g.split_sentences(text) == [
        "Run `acme keys rotate` [1].", "It takes e.g. 3.5 seconds. [2]", "1. Edit install.md first.", "Done!"]


def test_split_chinese():
    assert g.split_sentences("密钥每90天轮换一次【1】。请运行命令！好") == ["密钥每90天轮换一次【1】。", "请运行命令！", "好"]


def test_parse_and_strip_citations():
    assert g.parse_citations("See [2][3] and [1, 4] or 【5】.") == [1, 2, 3, 4, 5]
    assert g.strip_citations("Keys rotate daily [1].") == "Keys rotate daily."
    assert g.parse_citations("a list [x] and arr[0]") == []  # sources are numbered from 1


def test_overlap_and_numbers():
    assert g.overlap("The old key stays valid for 24 hours", PASSAGE) > 0.6
    assert g.overlap("Use Windows Update to remove it", PASSAGE) < 0.3
    assert g.numbers("valid for 48 hours [1]") == {"48"}


def test_supported_sentence_gets_its_citation(embed):
    checks = g.check_sentences("The old key stays valid for 24 hours after rotation.", [OTHER, PASSAGE], embed)
    assert len(checks) == 1
    assert checks[0].supported and checks[0].citations == [2]


def test_wrong_number_is_unsupported(embed):
    checks = g.check_sentences("The old key stays valid for 48 hours [1].", [PASSAGE], embed)
    assert not checks[0].supported and checks[0].citations == [1]


def test_on_topic_invention_is_unsupported(embed):
    text = "To rotate keys, open the Windows registry editor and delete the HKEY_KEYS folder."
    checks = g.check_sentences(text, [PASSAGE], embed)
    assert not checks[0].supported and checks[0].citations == []
    assert not g.any_supported_claim(checks)


def test_citation_beyond_the_passages_is_dropped(embed):
    checks = g.check_sentences("Keys are rotated with acme keys rotate [7].", [PASSAGE], embed)
    assert checks[0].citations == [1] and checks[0].supported


def test_filler_is_not_a_claim(embed):
    checks = g.check_sentences("Sure! Run acme keys rotate to rotate API keys.", [PASSAGE], embed)
    assert checks[0].text == "Sure!" and checks[0].score == 0.0
    assert checks[1].supported and g.any_supported_claim(checks)


def test_chinese_support_by_character_bigrams(embed):
    passage = "max_connections 设置限制数据库连接池的大小。它的默认值是 20 个连接。"
    good = g.check_sentences("max_connections 的默认值是 20 个连接。", [passage], embed)
    bad = g.check_sentences("日志文件保存在用户的主目录中。", [passage], embed)
    assert good[0].supported and good[0].citations == [1]
    assert not bad[0].supported


# Hand-labelled claims: faithful rewordings and on-topic inventions (wrong number, command, place).
LABELLED_PASSAGES = {
    "rotate": "API keys are rotated with the command `acme keys rotate`. Rotation creates a new key, keeps the "
              "old key valid for 24 hours, and then revokes it.",
    "store": "Keys are stored encrypted with AES-256 in the vault directory. The vault is unlocked at start-up "
             "with the master password, which is never written to disk.",
    "linux": "On Linux, install the CLI with `pip install acme-cli`. The server listens on port 8420 by default; "
             "change it with the `--port` option.",
    "windows": "On Windows, download the installer acme-setup.exe and run it as administrator. To uninstall, use "
               "Apps & Features in the Settings app.",
    "pool": "The max_connections setting limits the database connection pool. Its default value is 20 connections.",
    "backup": "Backups run every night at 02:00 and are kept for thirty days in the backup bucket.",
    "release": "Version 2.1 adds single sign-on with SAML and fixes a crash when exporting large reports.",
    "alerts": "Alerts are sent to Slack or e-mail when the error rate exceeds five percent for ten minutes.",
    "pool_zh": "max_connections 设置限制数据库连接池的大小。它的默认值是 20 个连接。",
}
# (passage, claim, supported?)
LABELLED_CLAIMS = [
    ("rotate", "Run acme keys rotate to rotate API keys.", True),
    ("rotate", "The old key stays valid for 24 hours after rotation.", True),
    ("rotate", "After rotation the old key is revoked a day later, once 24 hours have passed.", True),
    ("rotate", "The old key stays valid for 48 hours after rotation.", False),
    ("rotate", "Use acme keys renew to rotate API keys.", False),
    ("rotate", "To rotate keys, open the Windows registry editor and delete the HKEY_KEYS folder.", False),
    ("store", "Keys are kept encrypted with AES-256 in the vault directory.", True),
    ("store", "The master password is never written to disk.", True),
    ("store", "Keys are stored in plain text in the home directory.", False),
    ("store", "The vault is unlocked with a hardware token.", False),
    ("linux", "The server listens on port 8420 by default.", True),
    ("linux", "Install the CLI on Linux with pip install acme-cli.", True),
    ("linux", "The server listens on port 8080 by default.", False),
    ("linux", "On Linux, install the CLI with apt-get install acme.", False),
    ("windows", "To uninstall on Windows, use Apps & Features in the Settings app.", True),
    ("windows", "To uninstall on Windows, you need to use Windows Update to remove the acme-setup.exe.", False),
    ("windows", "Run the installer acme-setup.exe as administrator.", True),
    ("pool", "The default value of max_connections is 20.", True),
    ("pool", "max_connections defaults to 100 connections.", False),
    ("pool", "The max_connections setting controls the size of the thread pool for web requests.", False),
    ("backup", "Backups are kept for thirty days.", True),
    ("backup", "Backups run every night at 02:00.", True),
    ("backup", "Backups run every hour and are kept forever.", False),
    ("release", "Version 2.1 adds single sign-on with SAML.", True),
    ("release", "Version 2.1 adds a new feature called SAML-2.0.1 that improves reliability.", False),
    ("release", "Version 2.1 removes support for LDAP.", False),
    ("alerts", "Alerts go to Slack or e-mail when the error rate stays above five percent for ten minutes.", True),
    ("alerts", "Alerts are sent by SMS when the CPU is busy.", False),
    ("pool_zh", "max_connections 的默认值是 20 个连接。", True),
    ("pool_zh", "max_connections 的默认值是 100。", False),
    ("pool_zh", "日志文件保存在用户的主目录中。", False),
]


def test_check_beats_an_embedding_threshold_on_labelled_claims(embed):
    """The shipped check must beat the best single embedding threshold (tuned on this very set)."""
    import numpy as np

    labels = [s for _, _, s in LABELLED_CLAIMS]
    ours = [g.check_sentences(c, [LABELLED_PASSAGES[p]], embed)[0].supported for p, c, _ in LABELLED_CLAIMS]
    cos = (embed([c for _, c, _ in LABELLED_CLAIMS]) * embed([LABELLED_PASSAGES[p] for p, _, _ in LABELLED_CLAIMS])).sum(1)
    emb_acc = max(np.mean([(c >= t) == s for c, s in zip(cos, labels)]) for t in np.unique(cos))
    our_acc = np.mean([o == s for o, s in zip(ours, labels)])
    faithful_kept = np.mean([o for o, s in zip(ours, labels) if s])
    assert our_acc > emb_acc and our_acc >= 0.8
    assert faithful_kept >= 0.9  # a check that rejects true answers would make the assistant useless

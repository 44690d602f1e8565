"""Sentence splitting, citation parsing and the support check that decides what an answer may claim."""
from __future__ import annotations

import pytest

from assistant import grounding as g

PASSAGE = ("API keys are rotated with the command `acme keys rotate`. Rotation creates a new key, keeps the "
           "old key valid for 24 hours, and then revokes it.")
OTHER = "On Windows, download the installer acme-setup.exe and run it as administrator."


@pytest.fixture(scope="module")
def embed():
    from assistant.tasks.memory import default_models

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

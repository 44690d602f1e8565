"""Question answering: decline when nothing is relevant, answer from the best passage, check every sentence."""
from __future__ import annotations

from dataclasses import replace

import pytest

from assistant.config import Config
from assistant.tasks import qa
from assistant.tasks.base import Result, Status, TaskRequest, TextDelta
from doubles import FixedGenerator, MemoryContext, default_models
from assistant.types import Source

PASSAGES = [
    ("docs/security.md", "Security guide", "§ Keys > Rotation",
     "API keys are rotated with the command `acme keys rotate`. Rotation creates a new key, keeps the old key "
     "valid for 24 hours, and then revokes it. Administrators can also rotate keys in the web console."),
    ("docs/security.md", "Security guide", "§ Keys > Storage",
     "Keys are stored encrypted with AES-256 in the vault directory. The vault is unlocked at start-up with "
     "the master password, which is never written to disk."),
    ("docs/install.md", "Installation", "§ Linux",
     "On Linux, install the CLI with `pip install acme-cli`. The server listens on port 8420 by default; "
     "change it with the `--port` option."),
    ("docs/install.md", "Installation", "§ Windows",
     "On Windows, download the installer acme-setup.exe and run it as administrator. To uninstall, use Apps & "
     "Features in the Settings app."),
]
SOURCES = [Source(path=p, title=t, locator=loc, snippet=x[:80], score=0.0, text=x, chunk_id=f"c{i}")
           for i, (p, t, loc, x) in enumerate(PASSAGES)]


@pytest.fixture(scope="module")
def models():
    return default_models()


def fixed_ctx(models, reply, *, sources=SOURCES, config=None, window=2048, margin=float("inf")):
    """These tests are about what happens to the model's answer, so the model is asked on every
    question (by default only when windows are close: `test_a_window_clearly_ahead_is_quoted_without_the_model`)."""
    _, emb = models
    config = (config or Config()).replace(model_margin=margin)
    return MemoryContext(sources, FixedGenerator(reply, context_window=window), emb, config)


def run(ctx, text, **kw):
    events = list(qa.run(ctx, TaskRequest(text=text, query=kw.pop("query", text), **kw)))
    answer = events[-1].answer
    assert isinstance(events[-1], Result)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip() == answer.text  # stream == text
    return answer, events


def test_unanswerable_question_is_declined_without_the_model(models):
    ctx = fixed_ctx(models, "Paris is the capital of France.")
    answer, _ = run(ctx, "What is the capital of France?")
    assert answer.declined and "do not seem to contain" in answer.text
    assert "[1] " in answer.text and len(answer.sources) == 4  # the closest passages are listed
    assert ctx.generator.prompts == []


def test_nothing_retrieved_is_declined(models):
    ctx = fixed_ctx(models, "anything", sources=[])
    answer, _ = run(ctx, "How do I rotate keys?")
    assert answer.declined and answer.sources == [] and answer.extra["reason"] == "no hits"


def test_answer_is_attributed_and_cited(models):
    ctx = fixed_ctx(models, "The old key stays valid for 24 hours after rotation.")
    answer, _ = run(ctx, "How long does the old key stay valid after rotation?")
    assert not answer.declined and answer.supported
    assert answer.text.endswith("[1]") and answer.sentences[0].citations == [1]
    assert answer.sources[0].locator == "§ Keys > Rotation"
    assert answer.cited_sources == [answer.sources[0]]
    prompt = ctx.generator.prompts[0][-1]["content"]
    assert "24 hours" in prompt and "AES-256" not in prompt  # one passage, the right one


def test_best_passage_is_chosen_within_the_hits(models):
    class Misordered(MemoryContext):  # a retriever that ranks the right passage last
        def retrieve(self, query, k, **kw):
            return [replace(s, dense_score=0.5) for s in (SOURCES[1], SOURCES[2], SOURCES[0])]

    _, emb = models
    ctx = Misordered(SOURCES, FixedGenerator("Run acme keys rotate."), emb)
    answer, _ = run(ctx, "Which command rotates API keys?")
    assert answer.sources[0] is not None and answer.sources[0].locator == "§ Keys > Rotation"
    assert [s.locator for s in answer.sources[1:]] == ["§ Keys > Storage", "§ Linux"]


def test_an_unsupported_answer_is_replaced_by_the_documents_own_sentence(models):
    ctx = fixed_ctx(models, "Open the Windows registry editor and delete the HKEY_KEYS folder.")
    answer, _ = run(ctx, "How do I rotate the keys?")  # no named term: every window stays a candidate
    assert "HKEY" not in answer.text and "registry" not in answer.text  # the invention is never shown
    assert not answer.declined and answer.extra["extracted"] and answer.supported
    assert "acme keys rotate" in answer.text and answer.text.endswith("[1]")
    assert answer.sources[0].locator == "§ Keys > Rotation"
    assert len(ctx.generator.prompts) == 2  # a second window was tried before quoting


def test_an_unsupported_answer_on_weak_evidence_is_declined(models):
    ctx = fixed_ctx(models, "Open the Windows registry editor and delete the HKEY_KEYS folder.",
                    config=Config(min_quote=5.0))  # no sentence is strong enough to quote
    answer, _ = run(ctx, "How do I rotate API keys?")
    assert answer.declined and "HKEY" not in answer.text and answer.extra["reason"] == "no supported answer"


def test_an_invented_option_makes_a_sentence_unsupported(models):
    ctx = fixed_ctx(models, "Rotate the keys with acme keys rotate --force-now.")
    answer, _ = run(ctx, "Which command rotates API keys?")
    assert "--force-now" not in answer.text and answer.extra.get("extracted")


def test_the_model_is_stopped_at_an_invented_term(models):
    """The sentence fails the check whatever follows "--force-now", so the model writes no more of it;
    the answer is what the whole sentence gave (the document's own sentence, quoted)."""
    reply = "Rotate the keys with acme keys rotate --force-now and wait until the console shows the new key."
    pulled: dict[bool, list[str]] = {True: [], False: []}
    texts = {}
    for early in (True, False):
        ctx = fixed_ctx(models, reply, config=Config(stop_at_foreign_term=early))
        original = ctx.generator.stream

        def counting(*a, _original=original, _early=early, **kw):
            for piece in _original(*a, **kw):
                pulled[_early].append(piece)
                yield piece

        ctx.generator.stream = counting
        texts[early] = run(ctx, "Which command rotates API keys?")[0].text
    assert texts[True] == texts[False] and "--force-now" not in texts[True]
    assert len(pulled[False]) == 2 * len(reply.split(" "))  # both candidates written to the end
    assert pulled[True].count("--force-now ") == 2 and len(pulled[True]) <= 2 * 9  # each stopped just after it


def test_foreign_terms_are_the_numbers_and_identifiers_a_passage_lacks():
    from assistant.grounding import foreign_terms

    passage = "The server listens on port 8420; change it with the --port option or in /etc/acme.conf."
    assert foreign_terms("It listens on port 8420 unless --port says otherwise.", passage) == []
    assert foreign_terms("It listens on port 8080 with --listen-port.", passage) == ["8080", "--listen-port"]
    assert foreign_terms("Edit /etc/acme.conf.", passage) == []


def test_names_written_as_code_dotted_or_camel_case_must_be_in_the_passage():
    """What the default model wrote on the dev sets and the support check let through: a file name,
    a command in backticks, a method name, none of them in the window it was handed."""
    from assistant.grounding import foreign_terms

    passage = ("submodule.<name>.url: Defines a URL from which the submodule repository can be cloned; "
               "the file .gitmodules lists them. Run `git push origin --delete topic` to delete a remote "
               "branch. CancelScheduledShutdown() cancels it, e.g. after a typo.")
    assert foreign_terms("The file `index.html` records the URL of each submodule.", passage) == ["index.html"]
    assert foreign_terms("Use the `git remote delete` command.", passage) == ["git remote delete"]
    assert foreign_terms("Use `git push origin --delete topic` to delete it.", passage) == []
    assert foreign_terms("The file .gitmodules lists the submodule.<name>.url of each.", passage) == []
    assert foreign_terms("Call cancelScheduledShutdown to cancel it.", passage) == []  # case does not matter
    assert foreign_terms("Call stopScheduledShutdown to cancel it.", passage) == ["stopscheduledshutdown"]
    assert foreign_terms("It cancels it, e.g. after a typo, i.e. at once.", passage) == []  # not names


def test_model_citations_are_checked(models):
    ctx = fixed_ctx(models, "Keys are stored encrypted with AES-256 [1]. The vault lives in the cloud [1].",
                    config=Config(context_passages=2))
    answer, _ = run(ctx, "Where and how are keys stored?")
    assert [c.supported for c in answer.sentences][0] and all(c.supported for c in answer.sentences)  # the unsupported second sentence is not shown
    assert "AES-256" in answer.text and "cloud" not in answer.text and not answer.declined


def test_a_checked_sentence_is_shown_before_the_model_finishes(models):
    ctx = fixed_ctx(models, "The old key stays valid for 24 hours after rotation. Then it is revoked.")
    gen = ctx.generator
    pulled = []
    original = gen.stream

    def counting(*a, **kw):
        for piece in original(*a, **kw):
            pulled.append(piece)
            yield piece

    gen.stream = counting
    events = qa.run(ctx, TaskRequest(text="How long is the old key valid?", query="How long is the old key valid?"))
    first = next(e for e in events if isinstance(e, TextDelta))
    assert first.text.startswith("The old key stays valid for 24 hours")
    words = len(gen.replies[0].split(" "))
    assert len(pulled) < words  # shown while the second sentence was not yet generated


@pytest.mark.parametrize("reply", [
    "SmolLM: The old key stays valid for 24 hours after rotation.",
    "Using only the text above, answer in one sentence: How long does the old key stay valid after rotation? "
    "The old key stays valid for 24 hours after rotation.",
    "Answer: Using only the text above, I will answer. The old key stays valid for 24 hours after rotation.",
])
def test_a_label_or_the_instruction_read_back_is_not_part_of_the_answer(models, reply):
    ctx = fixed_ctx(models, reply)
    answer, _ = run(ctx, "How long does the old key stay valid after rotation?")
    assert answer.text.startswith("The old key stays valid for 24 hours") and answer.supported


def test_preamble_filter_holds_only_what_could_still_be_a_preamble():
    from assistant.tasks.streams import without_preamble

    def run_pieces(pieces, question="How long is it?"):
        return list(without_preamble(iter(pieces), question, qa.INSTRUCTION_ECHOES))

    assert run_pieces(["The", " key", "."]) == ["The", " key", "."]  # nothing held back
    assert run_pieces(["A", " dock", "."]) == ["A dock", "."]  # "A" could have begun "Answer:"
    assert "".join(run_pieces(["Smol", "LM", ":", " Yes."])) == "Yes."
    assert "".join(run_pieces(["请只根据上面的文字，用一句话回答：“多久？”", " 三天。"], "多久？")) == "三天。"
    assert "".join(run_pieces(["请只根据上面的文字，用一句话回答：", "\n", "“多久？”", " 三天。"], "多久？")) == "三天。"
    assert "".join(run_pieces(["Using only the text above"])) == ""  # nothing but the echo: empty answer
    assert "".join(run_pieces(["  \n", "The end."])) == "  \nThe end."  # untouched when nothing is removed


def test_prompt_fits_a_small_window(models):
    long_passage = replace(SOURCES[0], text=SOURCES[0].text + " Filler sentence about keys." * 400)
    ctx = fixed_ctx(models, "The old key stays valid for 24 hours.", sources=[long_passage], window=400)
    history = [{"role": "user", "content": "Tell me about keys. " * 300},
               {"role": "assistant", "content": "Keys are rotated. " * 300}]
    question = "How long does the old key stay valid? " + "Please be precise. " * 200
    answer, _ = run(ctx, question, query="old key valid hours", history=history)
    sent = "\n".join(m["content"] for m in ctx.generator.prompts[0])
    assert ctx.count_tokens(sent) <= 400 - 16
    assert "24 hours" in sent  # the passage's head survived the trimming
    assert answer.text


def test_empty_question_is_an_error(models):
    with pytest.raises(ValueError, match="empty"):
        list(qa.run(fixed_ctx(models, "x"), TaskRequest(text="  ", query="")))


# ---- the real default generator ------------------------------------------------------------

@pytest.fixture(scope="module")
def real_ctx(models):
    gen, emb = models
    return MemoryContext(SOURCES, gen, emb, Config(model_margin=float("inf")))


def test_a_window_clearly_ahead_is_quoted_without_the_model(models):
    """The model only chooses between close windows; a window far ahead is the answer at once."""
    question = "Which port does the server listen on by default?"
    for margin, asked in ((0.10, False), (float("inf"), True)):
        ctx = fixed_ctx(models, "The server listens on port 8420 by default.", margin=margin)
        answer, _ = run(ctx, question)
        assert "8420" in answer.text and answer.sources[0].locator == "§ Linux"
        assert bool(ctx.generator.prompts) == asked
        assert answer.extra.get("extracted") != asked and answer.extra.get("reason", "clear window") == "clear window"


def test_close_windows_are_left_to_the_model(models):
    """Two pages that say the same of the old key (an older copy of the guide): their windows differ
    by the retriever's order alone, so the model writes the answer and the second is its fallback."""
    close = [SOURCES[0], replace(SOURCES[0], chunk_id="c9", path="docs/old/security.md")]
    ctx = fixed_ctx(models, "The old key stays valid for 24 hours after rotation.", sources=close, margin=0.10)
    answer, _ = run(ctx, "How long does the old key stay valid after rotation?")
    assert ctx.generator.prompts and not answer.extra.get("extracted")


def test_real_model_answers_with_the_right_citation(real_ctx):
    answer, events = run(real_ctx, "What port does the server listen on by default?")
    assert isinstance(events[0], Status)
    assert "8420" in answer.text
    assert not answer.declined and answer.supported
    assert answer.sources[0].locator == "§ Linux"
    assert all(c.citations == [1] for c in answer.sentences)


def test_real_model_declines_the_unanswerable(real_ctx):
    answer, _ = run(real_ctx, "Who won the football world cup in 2014?")
    assert answer.declined and "do not seem to contain" in answer.text


def test_chinese_question_is_answered_and_checked(models):
    zh = Source(path="docs/zh/配置.md", title="配置", locator="§ 数据库", snippet="max_connections", score=0.0,
                text="max_connections 设置限制数据库连接池的大小。它的默认值是 20 个连接。")
    ctx = fixed_ctx(models, "max_connections 的默认值是 20 个连接。", sources=[*SOURCES, zh])
    answer, _ = run(ctx, "max_connections 的默认值是多少？")
    assert not answer.declined and answer.sources[0].path == "docs/zh/配置.md"
    assert answer.sentences[0].supported and answer.text.endswith("[1]")
    assert "20" in answer.text and "\ufffd" not in answer.text
    assert ctx.generator.prompts == []  # the default model cannot write Chinese: the document's words


def test_chinese_answers_can_be_generated_when_configured(models):
    zh = Source(path="docs/zh/配置.md", title="配置", locator="§ 数据库", snippet="max_connections", score=0.0,
                text="max_connections 设置限制数据库连接池的大小。它的默认值是 20 个连接。")
    ctx = fixed_ctx(models, "max_connections 的默认值是 20 个连接。", sources=[*SOURCES, zh],
                    config=Config(generate_cjk=True))
    answer, _ = run(ctx, "max_connections 的默认值是多少？")
    assert "请只根据上面的文字" in ctx.generator.prompts[0][-1]["content"] and "20" in answer.text


def test_filler_before_the_answer_is_not_shown(models):
    ctx = fixed_ctx(models, "Sure! The old key stays valid for 24 hours after rotation.")
    answer, _ = run(ctx, "How long does the old key stay valid after rotation?")
    assert answer.text.startswith("The old key stays valid for 24 hours") and "Sure" not in answer.text


def test_stop_sequences_end_a_quoted_answer_too(demo_bot):
    """A quoted sentence is written by the task, not the model: the caller's stop still applies."""
    question = "Which environment variable makes the conversation log use PostgreSQL?"
    full = demo_bot.ask(question, log=False)
    stop = full.text.split()[2]
    pieces = [e.text for e in demo_bot.stream_events(question, log=False, stop=[stop]) if isinstance(e, TextDelta)]
    cut = demo_bot.ask(question, log=False, stop=[stop])
    assert stop not in cut.text and full.text.startswith(cut.text.rstrip())
    assert stop not in "".join(pieces)

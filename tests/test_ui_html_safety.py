"""Raw HTML inside a document stays text in everyone's chat; paths are shown relative to what was ingested.

The browser test is the attack as a user meets it: a Markdown file whose sentences carry <img>,
<picture>, <video autoplay>, <audio autoplay>, a position:fixed style with a background URL and a
password <form>, all pointing at a listener on 127.0.0.1. Another user asks a question that
quotes those sentences; headless Chromium must fetch nothing from the listener and show no such
element. The unit tests render the same payloads with a CommonMark renderer and list the tags.
"""
from __future__ import annotations

import html.parser
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from assistant.types import Answer, SentenceCheck, Source
from ui import render

# The test doubles of tests/test_ui_browser.py: same Chromium, same way of asking.
from test_ui_browser import ask, browser  # noqa: F401  (browser is a fixture)

LIVE = {"img", "picture", "source", "video", "audio", "form", "input", "button", "iframe", "style"}


def payloads(host: str) -> str:
    """A handbook page whose every sentence carries one way for HTML to reach out or cover the page."""
    return f"""# Visitor badges <img src="{host}/title.png">

Visitor badges are printed at the front desk <img src="{host}/img.png"> before nine in the morning.

Lost badges are replaced by security <picture><source srcset="{host}/picture.webp"><img src="{host}/picture.png"></picture> within one hour.

Badge photos are taken at reception <video autoplay muted src="{host}/video.mp4"></video> on the first day.

Badge holders hear a chime at the gate <audio autoplay src="{host}/audio.mp3"></audio> when the badge is accepted.

Expired badges are shredded <span style="position:fixed;top:0;left:0;width:100%;height:100%;z-index:9999;background:url({host}/bg.png)">by the facilities team</span> every Friday.

Badge renewals need your password <form action="{host}/form"><input type="password" name="pw"><button>Renew</button></form> at the kiosk.

Badge lanyards are blue ![lanyard]({host}/markdown-image.png) for staff and green for guests.
"""


# ---- unit: what the render functions hand to the chat ----------------------------------------

class _Tags(html.parser.HTMLParser):
    """Every start tag and its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _rendered_tags(message: str) -> list[tuple[str, dict]]:
    """The chat's Markdown renderer in miniature: CommonMark with raw HTML allowed, then parsed."""
    from markdown_it import MarkdownIt

    parser = _Tags()
    parser.feed(MarkdownIt("commonmark", {"html": True}).enable("table").render(message))
    return parser.tags


def _live(tags: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    return [(t, a) for t, a in tags if t in LIVE or "style" in a or "srcset" in a
            or (t != "a" and any("127.0.0.1" in (v or "") for v in a.values()))]


def test_answer_quoting_html_renders_no_live_tag_but_keeps_markdown_and_marks():
    doc = payloads("http://127.0.0.1:9")
    quote = " ".join(line for line in doc.splitlines() if line and not line.startswith("#"))
    text = f"**Badges** are printed at the front desk [1].\n\n- first\n- second\n\n> {quote} [1]"
    unsupported = "Badge renewals need your password"
    ans = Answer(text=text, sentences=[SentenceCheck(s, [1], supported=not s.startswith(unsupported))
                                       for s in [*text.split(". "), quote[quote.index(unsupported):]]],
                 sources=[Source(path="/srv/handbook/badges.md", title="Visitor badges", locator="",
                                 snippet=quote[:80], score=1.0, text=quote, rank=1)])
    for message in (render.answer_markdown(ans), render.streaming_markdown(text)):
        tags = _rendered_tags(message)
        assert not _live(tags), _live(tags)
        assert {"strong", "li", "blockquote"} <= {t for t, _ in tags}
    assert ("mark", {"class": "unsupported", "title": render.UNSUPPORTED_TITLE}) in _rendered_tags(render.answer_markdown(ans))
    assert "&lt;img src=" in render.answer_markdown(ans)  # shown as text, not dropped


def test_code_keeps_its_angle_brackets_and_cannot_smuggle_html():
    text = ("Use `a < b && c` here.\n\n1. Step\n   ```html\n   <img src=\"x.png\">\n   ```\n\n"
            "Unbalanced ` then <img src=\"y.png\"> and \\`<video src=\"z.mp4\">`")
    out = render.escape_markdown(text)
    tags = _rendered_tags(out)
    assert [t for t, _ in tags if t in LIVE] == [], out
    assert '<img src="x.png">' in out.split("```")[1]  # inside the fence: code, shown as written
    assert "<code>a &lt; b &amp;&amp; c</code>" in out


def test_shown_paths_are_relative_to_the_ingested_folder_or_the_uploads():
    roots = ["/srv/handbook", "/srv/handbook/security", "/home/ann/notes.md", "/ws/uploads"]
    assert render.shown_path("/srv/handbook/security/badges.md", roots) == "security/badges.md"
    assert render.shown_path("/home/ann/notes.md", roots) == "notes.md"
    assert render.shown_path("/ws/uploads/plan.pdf", roots) == "plan.pdf"
    assert render.shown_path("/elsewhere/secret/plan.pdf", roots) == "plan.pdf"  # never the server's layout


# ---- the real server, gradio_client and Chromium ----------------------------------------------

class _Listener(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.seen.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def listener():
    """A local HTTP server that records every request: any fetch of a document's URL lands here."""
    _Listener.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def handbook(tmp_path_factory, listener) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "handbook"
    (root / "security").mkdir(parents=True)
    (root / "security" / "visitor-badges.md").write_text(payloads(listener[1]))
    (root / "parking.md").write_text("# Parking\n\nVisitors park in the blue garage on level minus two.\n")
    return root


@pytest.fixture(scope="module")
def hostile_bot(tmp_path_factory, handbook):
    from assistant import Assistant

    bot = Assistant.open(tmp_path_factory.mktemp("ws") / "workspace")
    report = bot.ingest([handbook], progress=False)
    assert not report.failed and len(report.added) == 2, report
    yield bot
    bot.close()


@pytest.fixture(scope="module")
def hostile_server(hostile_bot):
    from ui.server import launch

    srv = launch(hostile_bot, port=0)
    yield srv
    srv.close()


NONE_LIVE = {"form": 0, "password": 0, "video": 0, "audio": 0, "picture": 0, "img_from_doc": 0,
             "from_doc": [], "fixed": []}
QUESTIONS = ["Where are visitor badges printed?", "What happens to expired badges?",
             "What do badge renewals need?", "When do badge holders hear a chime at the gate?",
             "When are badge photos taken at reception?"]
TITLE_QUESTION = "What colour are badge lanyards for staff? <img src=\"{host}/question.png\">"


def _live_in_chat(page, host: str) -> dict:
    """Elements anywhere on the page that load from the listener, and live kinds in chat and lists."""
    return page.evaluate("""(host) => {
      const panels = [...document.querySelectorAll('#chatbot, #conversations, #documents')];
      const all = (s) => panels.flatMap(p => [...p.querySelectorAll(s)]);
      const loads = ['src', 'srcset', 'action', 'formaction', 'style', 'poster', 'data', 'background'];
      const fromDoc = [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(
        a => loads.includes(a.name) && a.value.includes(host)));
      return {form: all('form').length, password: all('input[type=password]').length, video: all('video').length,
              audio: all('audio').length, picture: all('picture').length,
              img_from_doc: fromDoc.filter(e => e.tagName === 'IMG').length, from_doc: fromDoc.map(e => e.tagName),
              fixed: all('*').filter(e => getComputedStyle(e).position === 'fixed').map(e => e.tagName)};
    }""", host)


def test_hostile_document_fetches_nothing_and_shows_as_text(browser, hostile_bot, hostile_server, listener):  # noqa: F811
    srv, host = listener
    seen = srv.RequestHandlerClass.seen
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(180_000)
    try:
        page.goto(hostile_server.url)
        page.wait_for_selector("#question textarea")
        for n, question in enumerate([TITLE_QUESTION.format(host=host), *QUESTIONS], 1):
            ask(page, question)
            page.wait_for_function("(n) => document.querySelectorAll('#chatbot .sources').length >= n"
                                   " && !document.querySelector('#chatbot').innerText.includes('▌')", arg=n)
        page.wait_for_function("() => document.querySelector('#conversations').innerText.includes('lanyards')")
        time.sleep(2.0)  # fetches start as soon as elements exist; give them time to arrive
        found = _live_in_chat(page, host.split("//")[1])
        chat_text = page.locator("#chatbot").inner_text()
        print(f"requests seen by the listener: {len(seen)} {seen}\nlive elements in the chat: {found}")
        assert seen == [] and found == NONE_LIVE  # (a fixed overlay would also block the clicks below)
        assert "front desk" in chat_text and "<img" in chat_text  # the quote is there, as text
        assert "lanyards for staff? <img" in page.locator("#conversations").inner_text()  # titles: text

        page.locator("#chatbot details.source").first.locator("summary").click()
        # The conversation comes back from the log: same rules on the way back.
        page.locator("#new-chat").click()
        page.wait_for_function("() => !document.querySelector('#chatbot').innerText.includes('front desk')")
        page.locator("#conversations label").filter(has_text="lanyards for staff").first.click()
        page.wait_for_function("() => document.querySelector('#chatbot').innerText.includes('front desk')")
        time.sleep(1.5)
        resumed = _live_in_chat(page, host.split("//")[1])

        page.get_by_role("tab", name="Documents").click()
        page.wait_for_function("() => document.querySelector('#documents').innerText.includes('visitor-badges')")
        time.sleep(1.5)
        documents = page.locator("#documents").inner_text()
    finally:
        ctx.close()
    assert seen == [] and resumed == NONE_LIVE, (seen, resumed)
    assert "security/visitor-badges.md" in documents and "/hostile" not in documents  # no absolute server path


def test_api_and_sources_name_documents_relative_to_their_folder(hostile_server, handbook, tmp_path):
    from gradio_client import Client, handle_file

    upload = tmp_path / "canteen.md"
    upload.write_text("# Canteen\n\nThe canteen serves soup on Tuesdays and closes at three.\n")
    client = Client(hostile_server.url, verbose=False)
    try:
        report = client.predict([handle_file(str(upload))], api_name="/ingest")
        hits = client.predict("Which day is soup served in the canteen?", 5, "hybrid", api_name="/search")
        final = client.submit("Where are visitor badges printed?", api_name="/ask").result()
    finally:
        client.close()
    assert report["added"] and not report["failed"], report
    files = {h["file"] for h in hits} | {s["file"] for s in final["sources"]}
    print("files named by /search and /ask:", sorted(files))
    assert "canteen.md" in files and "security/visitor-badges.md" in files
    assert not any(f.startswith("/") or str(handbook) in f for f in files), files

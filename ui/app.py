"""The browser chat page and Gradio's named endpoints, both thin layers over one `Assistant`.

Everything here is presentation and access control: retrieval, prompting, grounding and
logging all happen inside `assistant.Assistant`. The signed-in user (Gradio's login,
`gr.Request.username`) is passed as `user=` so each person sees only their own conversations.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from assistant.collections import own_collection
from assistant.improve import cycle_plot_path, latest_report
from assistant.improve.report import render_markdown
from assistant.tasks import TASK_CHOICES
from assistant.tasks.base import Result, Status, TextDelta
from assistant.types import Source
from ui import limits, render
from ui.model_choice import UnknownModel, current_model, model_arg, model_choices
from ui.ownership import NotYourConversation, check_message_owner, own_conversation
from ui.security import UploadPolicy, UploadRejected, discard_upload, inside, save_upload

log = logging.getLogger(__name__)

# Labels only: the task names themselves come from the assistant's task registry.
TASK_LABELS = {"auto": "Auto", "qa": "Question", "summarize": "Summarise", "code": "Code"}
TASKS = [(TASK_LABELS.get(name, name.title()), name) for name in TASK_CHOICES]
CHAT_CONCURRENCY = 4  # simultaneous answers; more only queue up on a 2-core machine
CSS = """

mark.unsupported {background: #fde68a; text-decoration: underline dotted #b45309; color: inherit;}
.unsupported-note {color: #b45309; font-size: 0.9em;}
.sources {margin-top: .6em; border-top: 1px solid var(--border-color-primary); padding-top: .4em; font-size: .92em;}
.sources-head {font-weight: 600; margin-bottom: .2em;}
details.source {margin: .25em 0;}
details.source summary {cursor: pointer;}
.src-snippet {color: var(--body-text-color-subdued); display: block; margin-left: 1.6em;}
.src-path {font-family: var(--font-mono); font-size: .85em; color: var(--body-text-color-subdued); margin: .3em 0;}
.src-hit {background: rgba(59, 130, 246, .15); border-radius: 3px;}
.src-passage {white-space: pre-wrap; background: var(--background-fill-secondary); padding: .5em; border-radius: 6px;
  max-height: 22em; overflow: auto;}
@media (max-width: 640px) { .gradio-container {padding: 4px !important;} #chatbot {height: 60vh !important;} }
"""

# Phones: start with the conversation sidebar folded so the chat is what one sees first.
JS = """
() => { if (window.innerWidth < 700) { setTimeout(() => {
  const t = document.querySelector('.sidebar .toggle-button, button.toggle-button');
  const sb = document.querySelector('.sidebar');
  if (t && sb && sb.classList.contains('open')) t.click(); }, 300); } }
"""


WITHHELD = "*(This answer drew on documents you may no longer read; it is withheld.)*"


def _user(request: gr.Request | None) -> str | None:
    """The signed-in user, or None when the server runs without logins."""
    return getattr(request, "username", None) or None if request is not None else None


class ChatHandlers:
    """Event functions of the page and the named endpoints, bound to one assistant."""

    def __init__(self, bot: Any, uploads: UploadPolicy, allow_folders: bool, folder_roots: list[Path] | None = None):
        self.bot = bot
        self.uploads = uploads
        self.allow_folders = allow_folders
        self.folder_roots = [Path(p).resolve() for p in (folder_roots or [])]

    # ---- chat ---------------------------------------------------------------------------
    def respond(self, message: str, history: list[dict], conv_id: str | None, task: str, model: str,
                k: float, temperature: float, msg_ids: dict, request: gr.Request):
        """Stream one answer into the chat; yields (chat, textbox, conversation id, message ids)."""
        message = (message or "").strip()
        if not message:
            yield history, "", conv_id, msg_ids
            return
        kwargs = self._ask_kwargs(task, conv_id, _user(request), k, temperature, model)  # refusals before any output
        history = list(history or []) + [{"role": "user", "content": render.escape_markdown(message)}, {"role": "assistant", "content": render.streaming_markdown("", "Searching the documents…")}]
        yield history, "", conv_id, msg_ids
        text = ""
        try:
            for event in self.bot.stream_events(message, **kwargs):
                if isinstance(event, TextDelta):
                    text += event.text
                    history[-1] = {"role": "assistant", "content": render.streaming_markdown(text)}
                elif isinstance(event, Status):
                    history[-1] = {"role": "assistant", "content": render.streaming_markdown(text, event.text)}
                elif isinstance(event, Result):
                    ans = event.answer
                    history[-1] = {"role": "assistant", "content": render.answer_markdown(self.shown(ans))}
                    conv_id = ans.conversation_id or conv_id
                    if ans.message_id:
                        msg_ids = {**msg_ids, str(len(history) - 1): ans.message_id}
                yield history, "", conv_id, msg_ids
        except Exception as exc:  # show the failure in the chat instead of a silent spinner
            log.exception("answer failed")
            history[-1] = {"role": "assistant", "content": f"**Error:** {render.inert(str(exc))}"}
            yield history, message, conv_id, msg_ids

    def _ask_kwargs(self, task: str, conv_id: str | None, user: str | None, k: float, temperature: float, model: str) -> dict:
        """The facade's arguments; k = 0 and temperature = -1 mean "the workspace's setting"."""
        kw: dict[str, Any] = {"task": task or "qa", "conversation_id": conv_id or None, "user": user}
        with _as_gradio_error():
            if k not in (None, 0):
                kw["k"] = limits.check_k(k)
            if temperature is not None and temperature != -1:
                kw["temperature"] = limits.check_temperature(temperature)
        with _as_gradio_error():  # only offered names: never a path or hub id from the network
            chosen = model_arg(self.bot, model)
        if chosen:
            kw["model"] = chosen
        return kw

    def like(self, msg_ids: dict, data: gr.LikeData, request: gr.Request) -> tuple[int, str]:
        """Thumbs up/down on an answer: stored in the log at once; also selects it for a correction."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        mid = msg_ids.get(str(index))
        if not mid:
            gr.Warning("This answer is not in the log, so it cannot be rated.")
            return index, ""
        # liked: True/"Like", False/"Dislike", or empty when the user takes the thumb back.
        rating = 1 if data.liked in (True, "Like") else -1 if data.liked in (False, "Dislike") else 0
        self.rate(mid, _user(request), rating=rating)
        gr.Info("Thanks for the rating: it is stored with the answer." if rating else "Rating removed.")
        return index, f"Rated answer {'👍' if rating > 0 else '👎' if rating < 0 else '(none)'}. Add a correction below if you like."

    def correct(self, index: int | None, correction: str, msg_ids: dict, request: gr.Request) -> tuple[str, str]:
        """Store a correction for the selected (or else the latest) answer."""
        correction = (correction or "").strip()
        if not correction:
            return correction, "Write the correct answer first."
        if index is None and msg_ids:
            index = max(int(i) for i in msg_ids)
        mid = msg_ids.get(str(index)) if index is not None else None
        if not mid:
            return correction, "There is no logged answer to correct yet."
        # A correction says the answer was wrong, so it is stored with a thumbs-down.
        self.rate(mid, _user(request), rating=-1, correction=correction)
        return "", "Thanks: the correction is stored with the answer."

    # ---- conversations ------------------------------------------------------------------
    def conversation_choices(self, request: gr.Request) -> dict:
        return gr.update(choices=self._choices(_user(request)), value=None)

    def _choices(self, user: str | None) -> list[tuple[str, str]]:
        try:
            convs = self.bot.conversations(user=user, limit=50)
        except Exception as exc:  # logging off: the list simply stays empty
            log.info("no conversation list: %s", exc)
            return []
        out = []
        for c in convs:
            when = getattr(c, "created_at", None)
            stamp = when.strftime("%d %b %H:%M") if hasattr(when, "strftime") else ""
            out.append((f"{(c.title or 'Untitled')[:48]} · {stamp}".strip(" ·"), c.id))
        return out

    def own_conversation(self, conv_id: str, user: str | None):
        """The conversation if this user may see it (anyone may, when there are no logins)."""
        with _as_gradio_error():
            return own_conversation(self.bot, conv_id, user)

    def rate(self, message_id: str, user: str | None, **feedback: Any) -> str:
        """Store a rating or correction; with logins, only on answers in the user's own conversations."""
        with _as_gradio_error():
            check_message_owner(self.bot, message_id, user)
        return self.bot.feedback(message_id, user=user, **feedback)

    def resume(self, conv_id: str | None, request: gr.Request):
        """Load a past conversation (only one of this user's own) into the chat, sources included.

        An answer that drew on a collection the user may no longer read is withheld, text and sources."""
        if not conv_id:
            return gr.update(), None, {}
        user = _user(request)
        detail = self.own_conversation(conv_id, user)
        readable = self.bot.readable(user) if hasattr(self.bot, "readable") else None
        chat, ids = [], {}
        for m in detail.messages:
            if m.role not in ("user", "assistant"):
                continue
            if m.role == "assistant" and readable is not None and not set(getattr(m, "collections", [])) <= readable:
                chat.append({"role": "assistant", "content": WITHHELD})
                continue
            content = render.escape_markdown(m.content)  # the log keeps raw text: escape it like a live answer
            if m.role == "assistant" and m.sources:
                content += "\n\n" + render.sources_html(self.shown_sources([_logged_source(s) for s in m.sources]))
            chat.append({"role": m.role, "content": content})
            if m.role == "assistant":
                ids[str(len(chat) - 1)] = m.id
        return chat, conv_id, ids

    # ---- documents ----------------------------------------------------------------------
    def ingest_ui(self, files: list[str] | None, folder: str, collection: str | None = None,
                  request: gr.Request = None, progress=gr.Progress()):
        """Upload files and/or a server folder into the index; returns (status, failed rows, documents)."""
        user = _user(request)
        try:
            report, rejected = self._ingest(files, folder, progress, user=user, collection=collection)
        except (UploadRejected, PermissionError, FileNotFoundError, ValueError) as exc:
            return f"**Not ingested:** {render.inert(str(exc))}", [], self.document_rows(user)
        roots = self.roots()
        failed = [[r[0], r[1]] for r in rejected] + \
            [[render.shown_path(f.path, roots), f.reason] for f in report.failed] if report else rejected
        summary = report.summary() if report else "nothing ingested"
        return f"**Ingest:** {summary}" + (f" · {len(rejected)} upload(s) refused" if rejected else ""), failed, \
            self.document_rows(user)

    def upload_collection(self, user: str | None, chosen: str | None) -> str | None:
        """Where this user's uploads go: the collection they chose, if they may write to it, else their own
        (None without logins: uploads go to `shared`, as before collections)."""
        chosen = (chosen or "").strip() or None
        if user is None or not hasattr(self.bot, "collections"):
            return chosen
        if chosen is None:
            return self.bot.collections.ensure_own(user)
        if not self.bot.collections.writable(user, chosen):
            raise PermissionError(f"you may not add documents to the collection {chosen!r}")
        return chosen

    def collection_choices(self, request: gr.Request) -> dict:
        """The collections this user may upload into, their own first."""
        user = _user(request)
        if user is None or not hasattr(self.bot, "collections"):
            return gr.update(choices=[], value=None, visible=False)
        own = own_collection(user)
        names = [own, *sorted(n for n in (self.bot.readable(user) or ()) if n != own
                              and self.bot.collections.writable(user, n))]
        return gr.update(choices=names, value=own, visible=True)

    def _ingest(self, files, folder: str, progress=None, *, user: str | None = None, collection: str | None = None):
        try:
            collection = self.upload_collection(user, collection)
        except PermissionError:  # refused whole: Gradio's cached copies would otherwise stay servable by URL
            for f in files or []:
                src, _ = _file_path_and_name(f)
                if inside(src, get_upload_folder()):
                    discard_upload(src, get_upload_folder())
            raise
        uploads = replace(self.uploads, root=self.uploads.root / collection) if collection else self.uploads
        paths: list[Path] = []
        rejected: list[tuple[str, str]] = []
        cached: dict[str, str] = {}  # saved copy -> Gradio's cached upload it came from
        for f in files or []:
            src, name = _file_path_and_name(f)
            if not inside(src, get_upload_folder()):  # Gradio checks this too; never read server files
                raise PermissionError(f"{name}: not an uploaded file")
            try:
                paths.append(save_upload(src, name, uploads))
                cached[str(paths[-1].resolve())] = src
            except UploadRejected as exc:
                rejected.append((name, str(exc)))
                discard_upload(src, get_upload_folder())  # a refused file is not kept anywhere
        if folder and folder.strip():
            paths.append(self.check_folder(folder.strip()))
        if not paths:
            if rejected:
                return None, rejected
            raise ValueError("choose files to upload or a folder to index")

        def cb(msg: str, i: int, n: int) -> None:
            if progress is not None:
                progress((i, max(n, 1)), desc=msg)

        report = self.bot.ingest(paths, progress=cb, **({"collection": collection} if collection else {}))
        for failed in report.failed:  # accepted by name and size, but unreadable: not kept either
            discard_upload(failed.path, self.uploads.root)
        for src in cached.values():  # the workspace keeps its copy; Gradio's cache would serve this one by URL
            discard_upload(src, get_upload_folder())
        return report, rejected

    def check_folder(self, folder: str) -> Path:
        """The folder to index, if this server lets visitors name server folders (local use or an allowed root)."""
        path = Path(folder).expanduser().resolve()
        allowed = self.allow_folders or any(inside(path, r) for r in self.folder_roots + [self.uploads.root])
        if not allowed:
            raise PermissionError("indexing server folders is turned off for this shared server; upload files instead")
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist on the server")
        return path

    def documents_for(self, request: gr.Request) -> list[list]:
        """The Documents tab's rows for the signed-in user."""
        return self.document_rows(_user(request))

    def document_rows(self, user: str | None = None) -> list[list]:
        """The documents this user may read, each with its collection and who reads that collection."""
        try:
            roots = self.roots()
            docs = self.bot.documents(user) if user is not None else self.bot.documents()
            readers = getattr(getattr(self.bot, "collections", None), "readers_of", lambda name: [])
            return [[d.title, render.shown_path(d.path, roots), d.file_type, d.n_chunks, d.collection,
                     ", ".join(readers(d.collection))] for d in docs]
        except Exception as exc:
            log.info("no document list: %s", exc)
            return []

    # ---- what readers see of paths --------------------------------------------------------
    def roots(self) -> list[str]:
        """The folders documents were ingested from, and the uploads folder: shown paths are relative to them."""
        return render.reader_roots(self.bot, self.uploads.root)

    def shown_sources(self, sources: list[Source]) -> list[Source]:
        """Sources with paths relative to their ingest folder, for the chat and the named endpoints."""
        roots = self.roots()
        return [replace(s, path=render.shown_path(s.path, roots)) for s in sources]

    def shown(self, answer: Any) -> Any:
        """The answer with its sources' paths as readers see them (the log keeps the real ones)."""
        return render.with_shown_paths(answer, self.roots())

    # ---- named endpoints (gradio_client) ------------------------------------------------
    def api_ask(self, question: str, task: str = "qa", conversation_id: str = "", k: int = 0,
                temperature: float = -1.0, model: str = "", request: gr.Request = None) -> dict:
        """Answer a question from the documents, streaming: each update is {"text", "done", ...};
        the last one (done=True) carries sources, ids, grounding and timings."""
        if not (question or "").strip():
            raise gr.Error("question is empty")
        if conversation_id:
            self.own_conversation(conversation_id, _user(request))
        kwargs = self._ask_kwargs(task, conversation_id, _user(request), k, temperature, model)
        text = ""
        for event in self.bot.stream_events(question, **kwargs):
            if isinstance(event, TextDelta):
                text += event.text
                yield {"text": text, "done": False}
            elif isinstance(event, Result):
                yield {**render.answer_dict(self.shown(event.answer)), "done": True}

    def api_search(self, query: str, k: int = 5, mode: str = "hybrid", request: gr.Request = None) -> list[dict]:
        """Passages that match the query, best first (no generation), from what the caller may read."""
        if not (query or "").strip():
            raise gr.Error("query is empty")
        with _as_gradio_error():
            k, mode = limits.check_k(k), limits.check_search_mode(mode)
        user = _user(request)
        hits = self.bot.search(query, k=k, mode=mode, **({"user": user} if user is not None else {}))
        return [render.source_dict(i, s) for i, s in enumerate(self.shown_sources(hits), 1)]

    def api_feedback(self, message_id: str, rating: int, comment: str = "", correction: str = "",
                     request: gr.Request = None) -> str:
        """Rate an answer (+1 / -1), optionally with a comment or a corrected answer; returns the feedback id."""
        with _as_gradio_error():
            rating = limits.check_rating(rating)
        try:
            return str(self.rate(message_id, _user(request), rating=rating, comment=comment or None,
                                 correction=correction or None))
        except (KeyError, ValueError, PermissionError, RuntimeError) as exc:  # unknown id, bad rating, log off
            raise gr.Error(str(exc).strip("'\"")) from exc

    def api_ingest(self, files: list[str] | None, collection: str = "", request: gr.Request = None) -> dict:
        """Upload documents into WORKSPACE/uploads and index them, into the caller's own collection
        unless they name one they may write to; returns the ingest report."""
        try:
            report, rejected = self._ingest(files, "", None, user=_user(request), collection=collection or None)
        except PermissionError as exc:
            raise gr.Error(str(exc)) from None
        out = report.to_dict() if report else {"added": [], "updated": [], "skipped": [], "failed": []}
        roots = self.roots()  # paths as readers see them: relative to the uploads folder, never the server's
        for key in ("added", "updated", "skipped", "removed"):
            if isinstance(out.get(key), list):
                out[key] = [render.shown_path(p, roots) if isinstance(p, str) else p for p in out[key]]
        # "file", not "path": gradio_client would try to download any dict with a "path" key
        out["failed"] = [{"file": p, "reason": r} for p, r in rejected] + \
            [{"file": render.shown_path(f["path"], roots), "reason": f["reason"]} for f in out.get("failed", [])]
        out["summary"] = report.summary() if report else f"{len(rejected)} upload(s) refused"
        return out


@contextmanager
def _as_gradio_error() -> Iterator[None]:
    """Refusals from the shared rules (bad values, someone else's conversation) as Gradio errors,
    which the page shows as a message and gradio_client raises as AppError with the same text."""
    try:
        yield
    except (limits.InvalidParam, NotYourConversation, UnknownModel) as exc:
        raise gr.Error(str(exc)) from None


def _logged_source(s: Any) -> Source:
    """A source as the log keeps it (no full passage: the snippet stands in for it)."""
    return Source(path=s.path, title=s.title, locator=s.locator, snippet=s.snippet, score=s.score,
                  text=s.snippet, rank=s.rank)


def _file_path_and_name(f: Any) -> tuple[str, str]:
    """Gradio hands files as paths in its cache (named after the upload) or as FileData."""
    if isinstance(f, dict):
        return f["path"], f.get("orig_name") or Path(f["path"]).name
    path = getattr(f, "path", None) or getattr(f, "name", None) or str(f)
    return path, getattr(f, "orig_name", None) or Path(path).name


def build_app(bot: Any, *, uploads: UploadPolicy | None = None, allow_folder_ingest: bool = True,
              folder_roots: list[Path] | None = None, chat_concurrency: int = CHAT_CONCURRENCY,
              title: str = "Domain Assistant") -> gr.Blocks:
    """The chat page and the `/ask`, `/search`, `/ingest`, `/feedback` endpoints over `bot`."""
    uploads = uploads or UploadPolicy.for_workspace(bot.workspace)
    h = ChatHandlers(bot, uploads, allow_folder_ingest, folder_roots)
    with gr.Blocks(title=title, fill_height=True, fill_width=True) as demo:
        conv_id = gr.State(None)
        msg_ids = gr.State({})
        fb_index = gr.State(None)
        with gr.Sidebar(label="Conversations", open=True, width=280):
            gr.Markdown(f"### {title}")
            new_btn = gr.Button("+ New chat", variant="secondary", elem_id="new-chat")
            convs = gr.Radio(label="Your conversations", choices=[], elem_id="conversations")
            with gr.Accordion("Settings", open=False):
                model = gr.Dropdown(model_choices(bot), value=current_model(bot), label="Model", elem_id="model")
                k = gr.Slider(1, 12, value=getattr(bot.config, "top_k", 4), step=1, label="Sources (top-k)")
                temp = gr.Slider(0, 1.5, value=getattr(bot.config, "temperature", 0.0), step=0.05, label="Temperature")
        with gr.Tab("Chat", elem_id="tab-chat"):
            # Messages arrive escaped (render.escape_markdown); Gradio's sanitiser stays on as a second
            # layer, and allow_tags=False escapes any tag that is not standard HTML as well.
            chat = gr.Chatbot(elem_id="chatbot", height="65vh", buttons=["copy"], show_label=False,
                              sanitize_html=True, allow_tags=False,
                              placeholder="Ask about your documents. Answers cite their sources [1], [2]…")
            task = gr.Radio(TASKS, value="auto", show_label=False, container=False, elem_id="task",
                            info="What to do with the documents")
            with gr.Row(equal_height=True):
                box = gr.Textbox(placeholder="Ask a question, or ask for a summary or code…", show_label=False,
                                 scale=8, min_width=200, elem_id="question", autofocus=True, submit_btn=False)
                send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
            with gr.Accordion("Correct an answer", open=False, elem_id="correction-panel"):
                fb_note = gr.Markdown("Rate an answer with 👍/👎; the latest answer is corrected unless you rate another.")
                correction = gr.Textbox(label="Correct answer", lines=3, elem_id="correction")
                fix_btn = gr.Button("Save correction", elem_id="save-correction")
        with gr.Tab("Documents", elem_id="tab-docs"):
            files = gr.File(label="Upload documents", file_count="multiple", file_types=list(uploads.allowed_types),
                            elem_id="upload")
            folder = gr.Textbox(label="…or a folder on the server", placeholder="/srv/docs",
                                interactive=allow_folder_ingest or bool(folder_roots), elem_id="folder")
            ingest_btn = gr.Button("Add to the index", variant="primary", elem_id="ingest")
            ingest_status = gr.Markdown(elem_id="ingest-status")
            failed = gr.Dataframe(headers=["file", "reason"], label="Failed files", interactive=False, elem_id="failed")
            upload_to = gr.Dropdown(label="Collection", choices=[], visible=False, elem_id="upload-collection",
                                    info="Uploads go to your own collection unless you pick one you may add to")
            docs = gr.Dataframe(headers=["title", "path", "type", "chunks", "collection", "readers"],
                                label="Indexed documents (those you may read)", interactive=False, elem_id="documents")

        with gr.Tab("Models", elem_id="tab-models"):
            models_info = gr.Markdown(elem_id="models-info")
            improve_report = gr.Markdown(elem_id="improve-report")
            improve_plot = gr.Image(label="Held-out F1 across improvement cycles", visible=False,
                                    interactive=False, elem_id="improve-plot")
            refresh_models = gr.Button("Refresh", elem_id="refresh-models")

        chat_io = dict(inputs=[box, chat, conv_id, task, model, k, temp, msg_ids], outputs=[chat, box, conv_id, msg_ids])
        for trigger in (box.submit, send.click):
            trigger(h.respond, **chat_io, api_visibility="private", concurrency_id="chat",
                    concurrency_limit=chat_concurrency).then(h.conversation_choices, None, convs, api_visibility="private")
        chat.like(h.like, [msg_ids], [fb_index, fb_note], api_visibility="private")
        fix_btn.click(h.correct, [fb_index, correction, msg_ids], [correction, fb_note], api_visibility="private")
        new_btn.click(lambda: ([], None, {}, None), None, [chat, conv_id, msg_ids, fb_index], api_visibility="private") \
            .then(h.conversation_choices, None, convs, api_visibility="private")
        convs.input(h.resume, [convs], [chat, conv_id, msg_ids], api_visibility="private")
        ingest_btn.click(h.ingest_ui, [files, folder, upload_to], [ingest_status, failed, docs], api_visibility="private",
                         concurrency_id="ingest", concurrency_limit=1)
        demo.load(h.conversation_choices, None, convs, api_visibility="private")
        demo.load(h.documents_for, None, docs, api_visibility="private")
        demo.load(h.collection_choices, None, upload_to, api_visibility="private")
        panel_io = dict(fn=lambda: models_panel(bot), inputs=None,
                        outputs=[models_info, improve_report, improve_plot], api_visibility="private")
        demo.load(**panel_io)
        refresh_models.click(**panel_io)

        # Named endpoints for gradio_client; same handlers, no page components involved.
        gr.api(h.api_ask, api_name="ask", concurrency_id="chat", concurrency_limit=chat_concurrency)
        gr.api(h.api_search, api_name="search", concurrency_limit=chat_concurrency)
        gr.api(h.api_feedback, api_name="feedback", concurrency_limit=chat_concurrency)
        api_files = gr.File(file_count="multiple", visible=False)
        api_collection = gr.Textbox(value="", visible=False)
        api_report = gr.JSON(visible=False)
        gr.Button(visible=False).click(h.api_ingest, [api_files, api_collection], [api_report], api_name="ingest",
                                       concurrency_id="ingest", concurrency_limit=1)
    demo.queue(default_concurrency_limit=chat_concurrency, max_size=64)
    return demo


def models_panel(bot: Any) -> tuple[str, str, Any]:
    """The Models tab: what is served, what is registered, and the last `assistant improve` cycle."""
    lines = [f"**Serving:** `{current_model(bot)}`", "", "| model | served |", "| --- | --- |"]
    lines += [f"| `{name}` | {'yes' if name == current_model(bot) else ''} |" for name in model_choices(bot)]
    lines += ["", "Switch with `assistant models use NAME`; `assistant models rollback` returns to the previous one."]
    report = latest_report(bot.workspace)
    report_md = render_markdown(report) if report else "No improvement cycle yet: run `assistant improve`."
    plot = cycle_plot_path(bot.workspace)
    image = None
    if plot:  # handed over as pixels: the workspace itself is never served as files
        with Image.open(plot) as img:
            image = img.convert("RGB")
    return "\n".join(lines), report_md, gr.update(value=image, visible=image is not None)


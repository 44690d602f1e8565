"""Code generation against the workspace's code and docs, checked before it is handed over.

The model is asked for one fenced block; the orchestrator extracts it, parses Python with `ast`,
retries once with the error when it does not parse, and otherwise says plainly that the code is
broken (`extra["syntax_error"]`) rather than presenting it as fine. With user tests, the code runs
against them in `assistant.sandbox` (a separate, fenced-in process) and the verdict is reported.
"""
from __future__ import annotations

import ast
import re
from typing import Generator, Iterator

from assistant.sandbox import run_python
from assistant.tasks.base import Event, Result, Status, TaskContext, TaskRequest, TextDelta
from assistant.tasks.budget import answer_room, fit_text, passage_text, prompt_budget, rank_passages
from assistant.types import Answer, Source

CONTEXT_SHARE = 0.5  # at most this share of the prompt budget goes to retrieved code and docs
MAX_CONTEXT_PASSAGES = 2
PROMPT = ("{context}{request}\n\nWrite the {language} code for this. Reply with one ```{fence} code block "
          "that contains the complete code.")
RETRY_PROMPT = ("This {language} code has a syntax error ({error}):\n\n```{fence}\n{code}\n```\n\n"
                "Write the corrected code for this request: {request}\nReply with one ```{fence} code block.")
# Stop once the block is closed and prose begins: the explanation a small model adds after the code
# costs as much time as the code itself. The cut closing fence is put back below.
STOP = ["```\n\n"]
_FENCE_RE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)
_LANGS = {"python": "python", "py": "python", "javascript": "javascript", "js": "javascript",
          "typescript": "typescript", "ts": "typescript", "bash": "bash", "shell": "bash", "sh": "bash",
          "sql": "sql", "rust": "rust", "go": "go", "java": "java", "c++": "cpp", "cpp": "cpp"}


def requested_language(text: str) -> str:
    """The language the request names ("in JavaScript", "a bash script"), Python by default."""
    low = text.lower()
    for word in re.findall(r"[a-z+#]+", low):
        if word in _LANGS and word not in ("go", "sh", "py", "js", "ts"):
            return _LANGS[word]
    if re.search(r"\bin go\b|\bgolang\b", low):
        return "go"
    return "python"


def extract_code(text: str, language: str = "python") -> tuple[str, str]:
    """(code, language) of the first fenced block, preferring one in `language`; unfenced code as is."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE_RE.finditer(text)]
    for tag, body in blocks:
        if _LANGS.get(tag, tag) == language:
            return body.strip("\n"), language
    if blocks:
        tag, body = blocks[0]
        return body.strip("\n"), _LANGS.get(tag, tag) or language
    stripped = text.strip()
    if language == "python" and re.search(r"^\s*(def|class|import|from)\s", stripped, re.MULTILINE):
        return stripped, language
    return "", language


def syntax_error(code: str) -> str | None:
    """None when `code` parses as Python, else 'line N: message'."""
    try:
        ast.parse(code)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except ValueError as exc:  # e.g. null bytes
        return str(exc)
    return None


def salvage(code: str) -> str | None:
    """A parseable version of code the model broke by looping or by running out of tokens, if any.

    Repeated top-level definitions of the same name are dropped after the first (a looping model
    restates them, each worse), then trailing top-level blocks are dropped until the rest parses.
    None when nothing with a definition or a statement survives.
    """
    blocks: list[list[str]] = []
    for line in code.splitlines():
        if line.strip() and not line[0].isspace() and not line.startswith((")", "]", "}")) or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)
    seen: set[str] = set()
    kept: list[list[str]] = []
    for block in blocks:
        m = re.match(r"(?:async\s+)?(?:def|class)\s+(\w+)", block[0])
        if m and m.group(1) in seen:
            continue
        if m:
            seen.add(m.group(1))
        kept.append(block)
    while kept:
        candidate = "\n".join(line for block in kept for line in block).rstrip()
        if candidate.strip() and syntax_error(candidate) is None:
            return candidate
        kept.pop()
    return None


def complete_with_stub(code: str, request: str) -> str:
    """When the request holds a Python stub (signature + docstring), keep its imports and signature.

    Small models often answer a stub with only the body, or drop the stub's imports; the
    combination is only used when it parses and defines what the stub defines.
    """
    stub = "\n".join(re.findall(r"```(?:python|py)?\n(.*?)```", request, re.DOTALL)) or request
    names = re.findall(r"^def (\w+)\(", stub, re.MULTILINE)
    if not names or syntax_error(stub + "\n    pass\n") and syntax_error(stub):
        return code
    imports = [ln for ln in stub.splitlines() if re.match(r"^(from \S+ import .+|import \S+)", ln)]
    missing = [ln for ln in imports if ln not in code]
    if all(re.search(rf"^\s*def {n}\(", code, re.MULTILINE) for n in names):
        candidate = "\n".join(missing + [code]) if missing else code
    else:  # the reply is a body: indent it under the stub
        body = code if code.startswith((" ", "\t")) else "\n".join("    " + ln for ln in code.splitlines())
        candidate = stub.rstrip() + "\n" + body
    return candidate if syntax_error(candidate) is None else code


def run(ctx: TaskContext, req: TaskRequest) -> Iterator[Event]:
    request = req.text.strip() or req.query
    if not request:
        raise ValueError("empty request: describe the code you want")
    language = requested_language(request)
    fence = language
    yield Status("looking for relevant code and docs")
    hits = ctx.retrieve(req.query or request, req.k, path_prefix=req.path_prefix, file_types=req.file_types)
    relevant = [h for h in hits if h.dense_score is None or h.dense_score >= ctx.config.min_relevance]
    given = [relevant[i] for i, _ in rank_passages(ctx, req.query or request, relevant)[:MAX_CONTEXT_PASSAGES]]
    sources = given + [h for h in hits if h not in given]

    budget = prompt_budget(ctx) - ctx.count_tokens(PROMPT)
    request_text = fit_text(ctx, request, int(budget * 0.4))
    context = _context(ctx, given, min(int(budget * CONTEXT_SHARE), budget - ctx.count_tokens(request_text)))
    messages = [{"role": "user", "content": PROMPT.format(context=context, request=request_text,
                                                          language=language.capitalize(), fence=fence)}]
    text = yield from _stream_block(ctx, messages, req, fence)
    code, language = extract_code(text, language)
    if language == "python" and code:
        code = complete_with_stub(code, request)
    attempts = 1
    error = _check(code, language)
    salvaged = False
    if error and language == "python" and code and (fixed := salvage(code)) is not None:
        if _defines_stub(fixed, request):
            code, error, salvaged = complete_with_stub(fixed, request), None, True
    if error and language == "python":
        note = f"\n\n(The code above has a syntax error, {error}; trying once more.)\n\n"
        yield TextDelta(note)
        text += note
        retry = [{"role": "user", "content": RETRY_PROMPT.format(
            language=language.capitalize(), fence=fence, error=error,
            code=fit_text(ctx, code or text, int(budget * 0.4)), request=request_text)}]
        retry_text = yield from _stream_block(ctx, retry, req, fence)
        text += retry_text
        attempts = 2
        new_code, _ = extract_code(retry_text, language)
        new_code = complete_with_stub(new_code, request) if new_code else new_code
        new_error = _check(new_code, language)
        if new_error and new_code and (fixed := salvage(new_code)) is not None and _defines_stub(fixed, request):
            new_code, new_error, salvaged = complete_with_stub(fixed, request), None, True
        if new_error is None or (new_code and not code):
            code, error = new_code, new_error

    extra: dict = {"code": code, "language": language, "attempts": attempts}
    if salvaged:
        extra["salvaged"] = True  # trailing broken or repeated blocks were cut; the code shown above is longer
    if error:
        extra["syntax_error"] = error
        note = f"\n\nWarning: the code still has a syntax error ({error}); it will not run as is."
        yield TextDelta(note)
        text += note
    if req.tests.strip():
        if language != "python":
            extra["tests"] = {"passed": False, "error": f"tests run only for Python code, not {language}"}
        elif error:
            extra["tests"] = {"passed": False, "error": f"not run: syntax error ({error})"}
        else:
            yield Status("running your tests in the sandbox")
            result = run_python(code, req.tests)
            extra["tests"] = {k: v for k, v in result.to_dict().items()}
            for key in ("stdout", "stderr"):
                extra["tests"][key] = extra["tests"][key][-4000:]
        verdict = extra["tests"]
        note = "\n\nTests: passed." if verdict.get("passed") else f"\n\nTests failed: {verdict.get('error') or 'see output'}."
        yield TextDelta(note)
        text += note
    yield Result(Answer(text=text.strip(), sources=sources, task="code", question=req.text,
                        standalone_query=req.query, extra=extra))


def _defines_stub(code: str, request: str) -> bool:
    """True when `code` defines every function the request's stub names (or there is no stub)."""
    names = re.findall(r"^def (\w+)\(", request, re.MULTILINE)
    if not names:
        return bool(code.strip())
    return all(re.search(rf"^\s*def {n}\(", code, re.MULTILINE) or not re.search(r"^\S", code, re.MULTILINE)
               for n in names)


def label_fences(pieces: Iterator[str], language: str) -> Iterator[str]:
    """The stream with an unlabelled opening fence ("```" alone on its line) labelled ("```python"):
    the chat colours only labelled blocks, and the small model often leaves the label out.

    Text streams on as it comes, except a line that may be a fence, held until its end is seen.
    """
    inside, mid_line, held = False, False, ""
    for piece in pieces:
        held += piece
        out = []
        while "\n" in held:
            line, held = held.split("\n", 1)
            if not mid_line and line.strip().startswith("```"):
                if not inside and line.strip() == "```":
                    line = line.replace("```", "```" + language, 1)
                inside = not inside
            out.append(line + "\n")
            mid_line = False
        start = held.lstrip()
        if held and (mid_line or not (start.startswith("```") or "```".startswith(start))):
            out.append(held)
            held, mid_line = "", True
        if out:
            yield "".join(out)
    if held:
        yield held if mid_line or inside or held.strip() != "```" else held.replace("```", "```" + language, 1)


def _close_fence(text: str) -> str:
    """The "```" that closes a block left open (cut by the stop sequence or by the token limit)."""
    if text.count("```") % 2 == 0:
        return ""
    return "```" if text.endswith("\n") else "\n```"


def _check(code: str, language: str) -> str | None:
    if not code.strip():
        return "no code block in the reply"
    return syntax_error(code) if language == "python" else None


def _context(ctx: TaskContext, passages: list[Source], budget: int) -> str:
    if not passages or budget < 48:
        return ""
    blocks, left = [], budget
    for s in passages:
        header = f"From {s.path}" + (f" ({s.locator})" if s.locator else "") + ":\n"
        body = fit_text(ctx, passage_text(s), left // max(1, len(passages) - len(blocks)) - ctx.count_tokens(header))
        if not body:
            break
        blocks.append(header + body)
        left -= ctx.count_tokens(header + body)
    return "\n\n".join(blocks) + "\n\n" if blocks else ""


def _stream_block(ctx: TaskContext, messages: list[dict[str, str]], req: TaskRequest,
                  fence: str) -> Generator[TextDelta, None, str]:
    """Stream one model reply as deltas and return its text, with an unclosed fence closed and an
    unlabelled one labelled `fence`."""
    text = ""
    for piece in label_fences(ctx.generate_stream(messages, max_new_tokens=answer_room(ctx),
                                                  temperature=req.temperature, stop=STOP), fence):
        text += piece
        yield TextDelta(piece)
    closing = _close_fence(text)
    if closing:
        yield TextDelta(closing)
        text += closing
    return text

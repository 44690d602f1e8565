"""Finding function/class blocks in brace languages (C, C++, Java, Go, JS/TS, ...) without a parser.

We track `{`/`}` depth outside strings and comments; a top-level block runs from its signature
(plus the comment/annotation lines just above it) to the brace that closes it. Blocks longer than
`max_lines` are opened one level (a Java class becomes its methods). This is a boundary finder
for chunking, not a compiler: a stray brace in a macro only moves a chunk boundary.
"""
from __future__ import annotations

import re

from index.sections import Section

_NAME_PATTERNS = [
    re.compile(r"\b(class|interface|struct|enum|trait|impl|namespace|object|record)\s+([A-Za-z_]\w*)"),
    re.compile(r"\bfunc\s+(\([^)]*\)\s*)?([A-Za-z_]\w*)"),  # Go, with optional receiver
    re.compile(r"\b(function\*?|fn|def)\s+([A-Za-z_$][\w$]*)"),
    re.compile(r"\b(type)\s+([A-Za-z_]\w*)"),
    re.compile(r"\b(const|let|var)\s+([A-Za-z_$][\w$]*)\s*=\s*(async\s*)?(\(|function)"),
]
_CALL = re.compile(r"([A-Za-z_~][\w:~]*)\s*\([^;]*$")
_NOT_SIGNATURE = ("#", "import ", "package ", "using ", "from ", "require(")
_KEYWORDS = {"if", "for", "while", "switch", "catch", "return", "sizeof", "else", "do"}


def line_depths(lines: list[str]) -> list[tuple[int, int]]:
    """(depth before, depth after) of every line, ignoring braces in strings and comments."""
    depth, out, in_block_comment = 0, [], False
    for line in lines:
        before = depth
        i, n, quote = 0, len(line), ""
        while i < n:
            ch = line[i]
            if in_block_comment:
                if line.startswith("*/", i):
                    in_block_comment, i = False, i + 2
                    continue
            elif quote:
                if ch == "\\":
                    i += 2
                    continue
                if ch == quote:
                    quote = ""
            elif line.startswith("//", i) or (ch == "#" and not line[:i].strip()):
                break
            elif line.startswith("/*", i):
                in_block_comment, i = True, i + 2
                continue
            elif ch in "\"'`":
                quote = ch
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth = max(0, depth - 1)
            i += 1
        out.append((before, depth))
    return out


def block_name(signature: str) -> str:
    """A short label for a block's signature: "func Hello", "class Server", "main()"."""
    m = _NAME_PATTERNS[1].search(signature)
    if m:
        return f"func {m.group(2)}"
    for pattern in (_NAME_PATTERNS[0], *_NAME_PATTERNS[2:]):
        m = pattern.search(signature)
        if m:
            kind = "function" if m.group(1) in ("const", "let", "var") else m.group(1)
            return f"{kind} {m.group(2)}"
    m = _CALL.search(signature.split("{")[0])
    if m and m.group(1) not in _KEYWORDS:
        return f"{m.group(1)}()"
    return ""


def brace_sections(text: str, max_lines: int = 60) -> list[Section] | None:
    """Top-level blocks (opened one level when long) as code sections; None when braces do not balance."""
    lines = text.split("\n")
    depths = line_depths(lines)
    if depths and depths[-1][1] != 0:
        return None  # unbalanced: fall back to line windows
    sections: list[Section] = []

    def emit(start: int, end: int, heading: list[str]) -> None:  # 0-based inclusive
        if start <= end and re.sub(r"[\s{}();,]", "", "".join(lines[start:end + 1])):
            sections.append(Section("\n".join(lines[start:end + 1]), heading, start + 1, kind="code"))

    def split(first: int, last: int, level: int, prefix: list[str]) -> None:
        cursor, i = first, first
        while i <= last:
            before, after = depths[i]
            one_liner = before == after == level and "{" in lines[i] and bool(block_name(lines[i]))
            if before == level and (after > level or one_liner):
                end = i
                while end < last and depths[end][1] > level:
                    end += 1
                start = i
                # pull the signature continuation, comments and annotations just above the brace line
                while start - 1 >= cursor and lines[start - 1].strip() and depths[start - 1][0] == level \
                        and not lines[start - 1].rstrip().endswith((";", "}", "{")) \
                        and not lines[start - 1].lstrip().startswith(_NOT_SIGNATURE):
                    start -= 1
                emit(cursor, start - 1, prefix)
                signature = " ".join(l.strip() for l in lines[start:i + 1])
                name = block_name(signature)
                heading = prefix + ([name] if name else [])
                if end - start + 1 > max_lines and level < 2:
                    split(start, end, level + 1, heading)
                else:
                    emit(start, end, heading)
                cursor, i = end + 1, end + 1
                continue
            i += 1
        emit(cursor, last, prefix)

    split(0, len(lines) - 1, 0, [])
    return sections

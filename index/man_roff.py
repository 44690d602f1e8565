"""Manual pages in their source form: roff, as /usr/share/man holds them (`ls.1`, `open.2.gz`).

A user who points ingest at a folder of manual pages should get the pages, not "unsupported file
type '.gz'". groff renders a page as `man` would (`-man -Tutf8`; tables by tbl, the input encoding
by preconv, `.so` includes from the manual's root), left-adjusted and unhyphenated as man-db does
for a pager that is not a terminal, and the rendered text is read by its layout (`index.man_text`):
a page reads the same whether it was handed over as `ls.1.gz` or as `man ls > ls.txt`.

groff is a system tool (Debian: groff-base, which man-db needs), found at run time; without it a
page is reported with what to install and the rest of the ingest goes on. A file with a manual
suffix that is not roff (a rotated log "syslog.1") is read as plain text by `index.loaders`. A
page that is only an alias of another (".so man3/printf.3") is reported, not indexed twice.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path

from index.budget import LoadLimits
from index.man_text import OVERSTRIKE, load_man_text
from index.sections import LoadedDocument, LoadError, Section

PAGE_WIDTH = 80  # columns groff fills to, as `man` in an 80-column terminal
ROFF_LINES = 40  # a roff source shows a request or a comment within its first lines
# man-db's settings for a page it does not justify (--nj, --nh): justification spreads Chinese text
# with spaces, hyphenation splits words across lines.
_NO_ADJUST = b".ad l\n.de ad\n..\n.nh\n.de hy\n..\n"
_ROFF_LINE = re.compile(rb"^(?:[.']\\\"|\.(?:TH|Dd|Dt|SH|Sh|so|de|ig|TS)\b)")
_ALIAS = re.compile(rb"^\.so\s+(\S+)\s*$")
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def page_title(path: str | Path) -> str:
    """"ls.1.gz" -> "ls(1)": how manuals cite a page."""
    p = Path(path)
    if p.suffix.lower() == ".gz":
        p = Path(p.stem)
    return f"{p.stem}({p.suffix[1:]})"


def unpack(path: Path, data: bytes, limits: LoadLimits) -> bytes:
    """The page's bytes, gunzipped when its name says so, refused past `limits.max_unpacked_mb`."""
    if path.suffix.lower() != ".gz":
        return data
    cap = limits.max_unpacked_mb * 2**20
    try:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)  # gzip header
        out = inflater.decompress(data, cap + 1)
    except zlib.error as exc:
        raise LoadError(f"not a valid gzip file ({exc})") from None
    if len(out) > cap or inflater.unconsumed_tail:
        raise LoadError(f"unpacks to more than {limits.max_unpacked_mb} MB; not read")
    if not inflater.eof:  # a cut-off download or copy: half a page would be indexed as the page
        raise LoadError("truncated gzip file (its end is missing)")
    return out


def is_roff(data: bytes) -> bool:
    """A roff source: a request (.TH, .SH, .Dd ...) or a roff comment among its first lines."""
    return any(_ROFF_LINE.match(line.lstrip()) for line in data.splitlines()[:ROFF_LINES])


def alias_target(data: bytes) -> str | None:
    """The page a one-line alias page includes (".so man3/printf.3"), else None."""
    lines = [x for x in data.splitlines() if x.strip() and not x.lstrip().startswith((b'.\\"', b"'\\\""))]
    if len(lines) == 1 and (m := _ALIAS.match(lines[0].strip())):
        return m.group(1).decode("utf-8", "replace")
    return None


def render(path: Path, source: bytes, width: int = PAGE_WIDTH, timeout: float = 60.0) -> str:
    """The page as `man` shows it, as plain UTF-8 text (no bold, no colour)."""
    groff = shutil.which("groff")
    if groff is None:
        raise LoadError("a manual page source (roff) needs groff to be read: install it "
                        "(Debian/Ubuntu: apt install groff-base), or ingest `man PAGE > PAGE.txt` instead")
    env = dict(os.environ, LC_ALL="C.UTF-8", GROFF_SGR="")
    root = path.parent.parent if path.parent.name.startswith("man") else path.parent  # where ".so man3/x.3" resolves
    try:
        proc = subprocess.run([groff, "-k", "-s", "-t", "-Tutf8", "-man", f"-rLL={width}n", "-P-cbou"],
                              input=_NO_ADJUST + source, capture_output=True, env=env, timeout=timeout,
                              check=False, cwd=str(root) if root.is_dir() else None)
    except subprocess.TimeoutExpired:
        raise LoadError(f"groff took more than {timeout:.0f} s to render this page") from None
    text = OVERSTRIKE.sub("", _SGR.sub("", proc.stdout.decode("utf-8", errors="replace")))
    if not text.strip():
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        raise LoadError(f"groff rendered nothing{': ' + reason[0] if reason else ''}")
    text = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text)  # runs of blank lines
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def load_man_source(path: Path, roff: bytes) -> LoadedDocument:
    """A manual page's roff source (unpacked, `is_roff`) read as the page `man` would show."""
    if target := alias_target(roff):
        raise LoadError(f"an alias of {target} (.so); indexed as that page, not twice")
    title = page_title(path)
    text = render(path, roff)
    return LoadedDocument(str(path), title, "man", load_man_text(text, title) or [Section(text, [], 1)])

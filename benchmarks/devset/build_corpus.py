#!/usr/bin/env python3
"""Build (and verify) the corpus of the issue-13 development set from installed Debian packages.

The corpus is made only of real manuals the team did not write, copied or rendered from
Debian packages:

    en/git/            git-doc: git's HTML manual pages, user manual and guides (top level)
    en/sqlite/         sqlite3-doc: the SQLite HTML documentation (top level; no C API pages)
    en/debian-faq/     debian-faq: the Debian FAQ in HTML, one page per chapter
    en/handbook/       debian-handbook: The Debian Administrator's Handbook, its English (en-US)
                       HTML pages as shipped, one per chapter or section
    zh/manN/           manpages-zh: the zh_CN manual pages of sections 1, 5, 7, 8 rendered to text
    retrieval/faq/     the Debian FAQ split into one short text file per answer ...
    retrieval/reference/git/, retrieval/reference/sqlite/
                       ... among several hundred long reference pages (git and SQLite HTML)
    summaries/manN/    English section 1 and 8 manual pages (coreutils, util-linux, ...) rendered
                       to text with their NAME section removed
    MANIFEST.json      the packages and versions used, and every file with its size and sha256

Excluded by rule (independent checks use them): the PostgreSQL manual, Python's FAQ pages and
manual pages of sections 2 and 3. (The Debian Reference, package debian-reference, is a
different document from the handbook and is not part of this set.)

After building, every question file beside this script is verified: each answerable question's
answer strings must occur (case-insensitively, whitespace normalised) in the text of its page,
each path must exist, unanswerable questions must have no answers, retrieval targets must be
short FAQ pages, and summary references must equal the page's NAME description. The exit
status is non-zero when anything fails; the failures are listed.

Usage:
    apt-get update -qq && apt-get install -y -qq git-doc sqlite3-doc debian-faq debian-handbook manpages-zh groff-base coreutils util-linux mount bsdutils
    python3 benchmarks/devset/build_corpus.py            # build into benchmarks/devset/corpus, then verify
    python3 benchmarks/devset/build_corpus.py --verify   # only verify an existing corpus

Python standard library only; shells out to dpkg-query and groff.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "corpus"
MARKER = ".devset-corpus"  # hidden, so ingestion skips it

# package -> why it is needed
PACKAGES = {
    "git-doc": "git's HTML manual (en/git, retrieval/reference/git)",
    "sqlite3-doc": "the SQLite HTML documentation (en/sqlite, retrieval/reference/sqlite)",
    "debian-faq": "the Debian FAQ (en/debian-faq, retrieval/faq)",
    "debian-handbook": "The Debian Administrator's Handbook, English HTML (en/handbook)",
    "manpages-zh": "Chinese (zh_CN) manual pages (zh/)",
    "groff-base": "groff renders manual pages to text",
    "coreutils": "English section 1 pages for the summary set",
    "util-linux": "English section 1/8 pages for the summary set",
    "mount": "English section 8 pages for the summary set (losetup, swapon)",
    "bsdutils": "English section 1 pages for the summary set (renice, script)",
}
APT_LINE = "apt-get update -qq && apt-get install -y -qq " + " ".join(PACKAGES)

GIT_DOC = Path("/usr/share/doc/git-doc")
SQLITE_DOC = Path("/usr/share/doc/sqlite3")
DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ")
# The handbook's English HTML: one page per chapter or section at the top level (images, CSS and
# Common_Content/ are left out; the loaders index only the text).
HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")
ZH_MAN = Path("/usr/share/man/zh_CN")
ZH_SECTIONS = ("1", "5", "7", "8")  # never 2 or 3
# manpages-zh also carries a translation of the PostgreSQL manual (its client/server programs in
# section 1 and its SQL commands in section 7). The PostgreSQL manual is excluded by rule: a page
# is dropped when its .TH line names PostgreSQL or the SQL-command section.
ZH_EXCLUDE_TH = re.compile(r"PostgreSQL|SQL - Language Statements|SQL Commands", re.IGNORECASE)
EN_MAN = Path("/usr/share/man")

# Reference pages of the retrieval sub-corpus: git/SQLite pages whose extracted text is at least
# this long, which is longer than every short FAQ page (the longest Debian FAQ answer is ~4,300).
REFERENCE_MIN_CHARS = 4500

# The English manual pages of the summary set: (section, page). Fixed so the set is stable.
SUMMARY_PAGES = [
    # coreutils
    ("1", "ls"), ("1", "cp"), ("1", "mv"), ("1", "rm"), ("1", "mkdir"), ("1", "rmdir"), ("1", "ln"),
    ("1", "cat"), ("1", "head"), ("1", "tail"), ("1", "sort"), ("1", "uniq"), ("1", "wc"), ("1", "cut"),
    ("1", "paste"), ("1", "join"), ("1", "tr"), ("1", "chmod"), ("1", "chown"), ("1", "chgrp"),
    ("1", "touch"), ("1", "df"), ("1", "du"), ("1", "date"), ("1", "echo"), ("1", "env"),
    ("1", "tee"), ("1", "split"), ("1", "csplit"), ("1", "nl"), ("1", "od"),
    ("1", "fold"), ("1", "fmt"), ("1", "expand"), ("1", "unexpand"), ("1", "comm"), ("1", "tac"),
    ("1", "shuf"), ("1", "seq"), ("1", "sleep"), ("1", "timeout"), ("1", "nohup"), ("1", "nice"),
    ("1", "stat"), ("1", "readlink"), ("1", "realpath"), ("1", "basename"), ("1", "dirname"),
    ("1", "sha256sum"), ("1", "md5sum"), ("1", "base64"), ("1", "truncate"), ("1", "shred"),
    ("1", "install"), ("1", "mktemp"), ("1", "dd"), ("1", "tsort"), ("1", "factor"), ("1", "numfmt"),
    ("1", "pr"), ("1", "ptx"), ("1", "stdbuf"), ("1", "sync"), ("1", "whoami"), ("1", "uname"),
    ("1", "tty"), ("1", "nproc"), ("1", "printenv"), ("1", "yes"),
    # util-linux
    ("8", "mkswap"), ("8", "blkid"), ("8", "losetup"), ("8", "wipefs"),
    ("8", "fsck"), ("8", "findfs"), ("8", "fstrim"), ("8", "swapon"), ("8", "blockdev"),
    ("8", "lsblk"), ("8", "findmnt"), ("1", "flock"), ("1", "getopt"), ("1", "lscpu"),
    ("1", "mcookie"), ("1", "renice"), ("1", "script"), ("1", "setsid"), ("1", "whereis"), ("1", "more"),
]

FORMS = ("sentence", "bullets:3", "paragraph")
# The summary requests, by form; a page's form and wording are chosen by its position in
# SUMMARY_PAGES so that summaries.jsonl is regenerated identically (--write-summaries).
REQUESTS = {
    "sentence": ["Summarise the manual page for {name} in one sentence.",
                 "In one sentence, what is {name} for, according to its manual page?",
                 "Give a one-sentence summary of this manual page ({name})."],
    "bullets:3": ["Summarise the manual page for {name} in 3 bullet points.",
                  "What does {name} do? Answer with three bullet points based on its manual page."],
    "paragraph": ["Write a short paragraph summarising the manual page of {name}.",
                  "Summarise this manual page for {name} in a short paragraph."],
}


# --------------------------------------------------------------------------------------------
# helpers

def die(msg: str, code: int = 2) -> None:
    print(f"build_corpus: {msg}", file=sys.stderr)
    sys.exit(code)


def package_versions(names) -> dict[str, str]:
    """Installed version of each package; missing packages abort with the apt-get line."""
    versions, missing = {}, []
    for name in names:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", name],
                              capture_output=True, text=True, check=False)
        status, _, version = proc.stdout.partition("\t")
        if proc.returncode != 0 or not status.endswith(" installed"):
            missing.append(name)
        else:
            versions[name] = version
    if missing:
        die("missing Debian packages: " + ", ".join(missing) + "\n"
            "  needed: " + "; ".join(f"{p}: {PACKAGES.get(p, '')}" for p in missing) + "\n"
            f"  install them with:\n    {APT_LINE}")
    return versions


def owner_package(path: Path) -> str:
    proc = subprocess.run(["dpkg-query", "-S", str(path)], capture_output=True, text=True, check=False)
    return proc.stdout.split(":", 1)[0].strip() if proc.returncode == 0 else ""


def norm(text: str) -> str:
    return " ".join(text.lower().split())


class _TextExtractor(HTMLParser):
    """Visible text of an HTML page (what index/loaders.load_html indexes), stdlib only."""

    SKIP = frozenset({"script", "style", "noscript", "template", "nav", "svg", "iframe", "title", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        self.parts.append(" ")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_text(raw: str) -> str:
    parser = _TextExtractor()
    parser.feed(raw)
    parser.close()
    return " ".join("".join(parser.parts).split())


def page_text(path: Path) -> str:
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() in (".html", ".htm"):
        return html_text(raw)
    return raw


# Prepended to every page, as man-db does for --nj/--nh: left-adjusted (no justification, which
# would spread CJK text with spaces) and no hyphenation (which would split words across lines).
_NO_ADJUST = b".ad l\n.de ad\n..\n.nh\n.de hy\n..\n"


def render_man(path: Path, width: int = 80) -> str:
    """A manual page rendered to plain UTF-8 text by groff (-man -Tutf8), formatting stripped.

    groff is called directly rather than through `man -l`: the same formatter without the pager
    logic (and `man -l` hung on some zh_CN pages here). `.so` links resolve from the man root.
    """
    raw = man_source(path).encode("utf-8")
    env = dict(os.environ, LC_ALL="C.UTF-8", GROFF_SGR="")
    try:
        proc = subprocess.run(["groff", "-k", "-s", "-t", "-Tutf8", "-man", f"-rLL={width}n", "-P-cbou"],
                              input=_NO_ADJUST + raw, capture_output=True, env=env, timeout=60, check=False,
                              cwd=str(path.parent.parent))
    except subprocess.TimeoutExpired:
        return ""
    text = proc.stdout.decode("utf-8", errors="replace")
    text = re.sub(r".\x08", "", text)             # overstrike bold/underline, if any
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)    # SGR escapes, if any
    text = re.sub(r"\n[ \t]*\n(?:[ \t]*\n)+", "\n\n", text)  # runs of blank lines
    return "\n".join(l.rstrip() for l in text.strip("\n").splitlines()) + "\n"


def strip_name_section(text: str) -> tuple[str, str]:
    """(page text without its NAME section, the NAME section's text)."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == "NAME" and not l.startswith(" ")), None)
    if start is None:
        return text, ""
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    name = " ".join(" ".join(lines[start + 1:end]).split())
    return "\n".join(lines[:start] + lines[end:]).rstrip() + "\n", name


def name_description(name_line: str) -> str:
    """'ls - list directory contents' -> 'list directory contents'."""
    m = re.match(r"^.*?\s[-\u2010-\u2015]\s+(.*)$", name_line)
    return (m.group(1) if m else name_line).strip()


# --------------------------------------------------------------------------------------------
# building

def copy_top_level_html(src: Path, dst: Path) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for f in sorted(src.glob("*.html")):
        if f.is_file():
            target = dst / f.name
            shutil.copyfile(f.resolve(), target)
            out.append(target)
    return out


def build_en(out: Path) -> None:
    copy_top_level_html(GIT_DOC, out / "en" / "git")
    copy_top_level_html(SQLITE_DOC, out / "en" / "sqlite")
    faq = out / "en" / "debian-faq"
    faq.mkdir(parents=True, exist_ok=True)
    for f in sorted(DEBIAN_FAQ.glob("*.en.html")):
        shutil.copyfile(f, faq / f.name.replace(".en.html", ".html"))
    if not copy_top_level_html(HANDBOOK, out / "en" / "handbook"):
        die(f"no HTML pages in {HANDBOOK} (is debian-handbook's en-US HTML installed?)\n"
            f"  install it with:\n    {APT_LINE}")


def man_source(path: Path) -> str:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", errors="replace")


def is_postgresql_page(path: Path) -> bool:
    """A page of the PostgreSQL manual (directly, or through a .so link to one)."""
    src = man_source(path)
    so = re.match(r"\.so\s+(\S+)", src.lstrip())
    if so:
        target = path.parent.parent / so.group(1)
        for cand in (target, target.with_name(target.name + ".gz")):
            if cand.exists():
                src = man_source(cand)
                break
    th = next((l for l in src.splitlines() if l.startswith(".TH")), "")
    return bool(ZH_EXCLUDE_TH.search(th))


def build_zh(out: Path, excluded: list[str]) -> int:
    jobs = []
    for sec in ZH_SECTIONS:
        dst = out / "zh" / f"man{sec}"
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted((ZH_MAN / f"man{sec}").iterdir()):
            name = f.name.removesuffix(".gz")
            if is_postgresql_page(f):
                excluded.append(f"man{sec}/{name}")
                continue
            jobs.append((f, dst / f"{name}.txt"))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        texts = list(pool.map(lambda job: render_man(job[0]), jobs))
    n = 0
    for (src, target), text in zip(jobs, texts):
        if len(text.strip()) < 40:
            print(f"  zh: skipped {src} (renders to nothing)", file=sys.stderr)
            continue
        target.write_text(text, encoding="utf-8")
        n += 1
    return n


_FAQ_HEAD = re.compile(r"^(\d+(?:\.\d+)+)\.[ \u00a0](.*)$")  # the FAQ's text uses no-break spaces
_CHAPTER = re.compile(r"^Chapter[ \u00a0](\d+)\.[ \u00a0]")


def split_debian_faq() -> list[tuple[str, str, str]]:
    """[(number, question heading, answer text)] for every numbered entry of the Debian FAQ."""
    raw = gzip.decompress((DEBIAN_FAQ / "debian-faq.en.txt.gz").read_bytes()).decode("utf-8")
    lines = raw.splitlines()
    start = next(i for i, l in enumerate(lines) if _CHAPTER.match(l))  # skip the table of contents
    entries: list[list] = []
    i = start
    while i < len(lines):
        line = lines[i]
        m = _FAQ_HEAD.match(line)
        if m:
            head = [m.group(2)]
            i += 1
            while i < len(lines) and lines[i] and not lines[i].startswith(" "):  # wrapped heading
                head.append(lines[i].strip())
                i += 1
            entries.append([m.group(1), " ".join(head), []])
            continue
        if _CHAPTER.match(line):
            entries.append([None, None, []])  # chapter intro: not an entry
        elif entries:
            entries[-1][2].append(line)
        i += 1
    result = []
    for num, head, body in entries:
        if num is None:
            continue
        text = "\n".join(l.removeprefix("    ") for l in body).strip()
        result.append((num, head, text))
    return result


def faq_filename(num: str, head: str) -> str:
    words = re.findall(r"[a-z0-9]+", head.lower().replace("'", ""))
    slug = "-".join(words[:7])
    return "-".join(p.zfill(2) for p in num.split(".")) + "-" + slug + ".txt"


def build_retrieval(out: Path) -> tuple[int, int]:
    faq_dir = out / "retrieval" / "faq"
    faq_dir.mkdir(parents=True, exist_ok=True)
    n_faq = 0
    for num, head, text in split_debian_faq():
        if len(text) < 40:
            continue  # an entry whose answer is only its sub-entries
        page = f"{num}. {head}\n\n{text}\n"
        if len(page) >= REFERENCE_MIN_CHARS:
            die(f"Debian FAQ entry {num} is {len(page)} characters, not shorter than the reference pages")
        (faq_dir / faq_filename(num, head)).write_text(page, encoding="utf-8")
        n_faq += 1
    n_ref = 0
    for src, name in ((GIT_DOC, "git"), (SQLITE_DOC, "sqlite")):
        dst = out / "retrieval" / "reference" / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.glob("*.html")):
            if not f.is_file():
                continue
            raw = f.read_text(encoding="utf-8", errors="replace")
            if len(html_text(raw)) >= REFERENCE_MIN_CHARS:
                shutil.copyfile(f, dst / f.name)
                n_ref += 1
    return n_faq, n_ref


def find_en_man(sec: str, page: str) -> Path | None:
    for cand in (EN_MAN / f"man{sec}" / f"{page}.{sec}.gz", EN_MAN / f"man{sec}" / f"{page}.{sec}"):
        if cand.exists():
            return cand
    return None


def build_summaries(out: Path) -> dict[str, dict]:
    """Rendered pages without NAME; returns {relative path: {"reference", "package"}}."""
    info = {}
    seen = set()
    for sec, page in SUMMARY_PAGES:
        if (sec, page) in seen:
            continue
        seen.add((sec, page))
        src = find_en_man(sec, page)
        if src is None:
            print(f"  summaries: no English page {page}({sec}) installed", file=sys.stderr)
            continue
        text, name_line = strip_name_section(render_man(src))
        rel = f"summaries/man{sec}/{page}.txt"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text, encoding="utf-8")
        info[rel] = {"reference": name_description(name_line), "package": owner_package(src.resolve()),
                     "source": str(src)}
    return info


def write_manifest(out: Path, versions: dict[str, str], summaries: dict[str, dict], zh_excluded: list[str]) -> None:
    files = []
    for f in sorted(out.rglob("*")):
        if f.is_file() and f.name not in ("MANIFEST.json", MARKER):
            data = f.read_bytes()
            files.append({"path": f.relative_to(out).as_posix(), "bytes": len(data),
                          "sha256": hashlib.sha256(data).hexdigest()})
    counts: dict[str, int] = {}
    for item in files:
        parts = item["path"].split("/")
        key = "/".join(parts[:2]) if parts[0] != "retrieval" else "/".join(parts[:3] if parts[1] == "reference" else parts[:2])
        counts[key] = counts.get(key, 0) + 1
    manifest = {
        "built_by": "benchmarks/devset/build_corpus.py",
        "packages": versions,
        "counts": counts,
        "total_files": len(files),
        "total_bytes": sum(x["bytes"] for x in files),
        "summary_pages": summaries,
        "zh_excluded_postgresql_pages": zh_excluded,
        "excluded_by_rule": ["the PostgreSQL manual", "Python's FAQ pages", "manual pages of sections 2 and 3"],
        "files": files,
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def build(out: Path) -> None:
    versions = package_versions(PACKAGES)
    if out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            die(f"{out} exists, is not empty and was not made by this script (no {MARKER}); refusing to delete it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by benchmarks/devset/build_corpus.py; deleted and rebuilt by it\n")
    print("build_corpus: en (git, sqlite, debian-faq, handbook) ...", file=sys.stderr)
    build_en(out)
    print("build_corpus: retrieval (split Debian FAQ + long reference pages) ...", file=sys.stderr)
    n_faq, n_ref = build_retrieval(out)
    print(f"  {n_faq} short FAQ pages, {n_ref} reference pages", file=sys.stderr)
    print("build_corpus: summaries (English man pages without NAME) ...", file=sys.stderr)
    summaries = build_summaries(out)
    print("build_corpus: zh (rendering zh_CN manual pages) ...", file=sys.stderr)
    zh_excluded: list[str] = []
    n_zh = build_zh(out, zh_excluded)
    print(f"  {n_zh} pages ({len(zh_excluded)} PostgreSQL pages left out)", file=sys.stderr)
    write_manifest(out, versions, summaries, zh_excluded)


# --------------------------------------------------------------------------------------------
# verification

def read_jsonl(path: Path, failures: list[str]) -> list[dict]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            failures.append(f"{path.name}:{n}: not JSON ({exc.msg})")
    return items


def verify_qa(corpus: Path, qa: Path, lang: str, failures: list[str], manual: str | None = None,
              under: str | None = None) -> dict[str, int]:
    """Check a question file; with manual/under, every question must name that manual and every
    answerable one a page under that folder (a file that covers one manual only)."""
    cache: dict[str, str] = {}
    ids = set()
    stats = {"answerable": 0, "unanswerable": 0}
    for n, item in enumerate(read_jsonl(qa, failures), start=1):
        where = f"{qa.name}:{n} ({item.get('id')})"
        for key in ("id", "question", "answers", "answerable", "lang", "manual"):
            if key not in item:
                failures.append(f"{where}: missing field {key!r}")
        if item.get("id") in ids:
            failures.append(f"{where}: duplicate id")
        ids.add(item.get("id"))
        if item.get("lang") != lang:
            failures.append(f"{where}: lang is {item.get('lang')!r}, expected {lang!r}")
        if manual is not None and item.get("manual") != manual:
            failures.append(f"{where}: manual is {item.get('manual')!r}, expected {manual!r}")
        answers = item.get("answers", [])
        if not item.get("answerable"):
            stats["unanswerable"] += 1
            if answers:
                failures.append(f"{where}: unanswerable question with answers")
            continue
        stats["answerable"] += 1
        path = item.get("path")
        if not answers or not isinstance(answers, list):
            failures.append(f"{where}: answerable question without answers")
            continue
        page = corpus / str(path)
        if under is not None and not str(path).startswith(under):
            failures.append(f"{where}: page {path!r} is not under {under}")
        if not path or not page.is_file():
            failures.append(f"{where}: page {path!r} not in the corpus")
            continue
        if path not in cache:
            cache[path] = norm(page_text(page))
        for ans in answers:
            if norm(ans) not in cache[path]:
                failures.append(f"{where}: answer {ans!r} not found in {path}")
    return stats


def verify_retrieval(corpus: Path, qa: Path, failures: list[str]) -> int:
    root = corpus / "retrieval"
    items = read_jsonl(qa, failures)
    for n, item in enumerate(items, start=1):
        path = item.get("path")
        if not item.get("question") or not path:
            failures.append(f"{qa.name}:{n}: needs question and path")
        elif not (root / path).is_file():
            failures.append(f"{qa.name}:{n}: {path!r} not in corpus/retrieval")
        elif not path.startswith("faq/"):
            failures.append(f"{qa.name}:{n}: target {path!r} is not a short FAQ page")
    return len(items)


def verify_summaries(corpus: Path, qa: Path, failures: list[str]) -> int:
    manifest = json.loads((corpus / "MANIFEST.json").read_text(encoding="utf-8"))
    pages = manifest.get("summary_pages", {})
    items = read_jsonl(qa, failures)
    for n, item in enumerate(items, start=1):
        where = f"{qa.name}:{n}"
        path = item.get("path", "")
        page = corpus / path
        if not page.is_file():
            failures.append(f"{where}: {path!r} not in the corpus")
            continue
        if item.get("form") not in FORMS:
            failures.append(f"{where}: form {item.get('form')!r} not one of {FORMS}")
        if not item.get("request"):
            failures.append(f"{where}: no request")
        want = pages.get(path, {}).get("reference")
        if want is None or norm(want) != norm(item.get("reference", "")):
            failures.append(f"{where}: reference {item.get('reference')!r} differs from the page's NAME "
                            f"description {want!r}")
        text = page.read_text(encoding="utf-8")
        if re.search(r"^NAME\s*$", text, re.MULTILINE):
            failures.append(f"{where}: {path} still has its NAME section")
    return len(items)


def write_summaries(corpus: Path, target: Path) -> int:
    """(Re)write summaries.jsonl from the corpus manifest: one request per summary page."""
    manifest = json.loads((corpus / "MANIFEST.json").read_text(encoding="utf-8"))
    pages = manifest.get("summary_pages", {})
    rows = []
    for i, (rel, info) in enumerate(pages.items()):
        name = Path(rel).stem
        form = FORMS[i % len(FORMS)]
        wordings = REQUESTS[form]
        request = wordings[(i // len(FORMS)) % len(wordings)].format(name=name)
        rows.append({"path": rel, "reference": info["reference"], "request": request, "form": form,
                     "page": f"{name}({rel.split('/')[1][3:]})", "package": info["package"]})
    target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"build_corpus: wrote {len(rows)} summary requests to {target}", file=sys.stderr)
    return len(rows)


def verify(corpus: Path) -> int:
    if not (corpus / "MANIFEST.json").exists():
        die(f"no corpus at {corpus} (run without --verify first)")
    failures: list[str] = []
    report = {}
    report["qa_en.jsonl"] = verify_qa(corpus, HERE / "qa_en.jsonl", "en", failures)
    report["qa_zh.jsonl"] = verify_qa(corpus, HERE / "qa_zh.jsonl", "zh", failures)
    report["qa_paraphrase.jsonl"] = verify_qa(corpus, HERE / "qa_paraphrase.jsonl", "en", failures)
    report["qa_handbook.jsonl"] = verify_qa(corpus, HERE / "qa_handbook.jsonl", "en", failures,
                                            manual="handbook", under="en/handbook/")
    report["retrieval_short_pages.jsonl"] = verify_retrieval(corpus, HERE / "retrieval_short_pages.jsonl", failures)
    report["summaries.jsonl"] = verify_summaries(corpus, HERE / "summaries.jsonl", failures)
    for name, stats in report.items():
        print(f"build_corpus: {name}: {stats}", file=sys.stderr)
    if failures:
        print(f"build_corpus: {len(failures)} verification failure(s):", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        return 1
    print("build_corpus: all question files verified", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus folder (default: %(default)s)")
    ap.add_argument("--verify", action="store_true", help="only verify the question files against an existing corpus")
    ap.add_argument("--write-summaries", action="store_true",
                    help="(re)write summaries.jsonl from the corpus manifest before verifying")
    args = ap.parse_args(argv)
    out = args.out.resolve()
    if not args.verify:
        build(out)
    if args.write_summaries:
        write_summaries(out, HERE / "summaries.jsonl")
    return verify(out)


if __name__ == "__main__":
    sys.exit(main())

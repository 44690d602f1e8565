#!/usr/bin/env python3
"""Build the summary development sets of other kinds than `summaries.jsonl` (groff-rendered
section 1/8 manual pages with their NAME removed), so that summaries are not tuned to one format:

- `summaries_py.jsonl`: Python standard-library modules with the docstring's first line (the
  module's own summary line) removed and kept as the reference; the rest of the docstring stays.
  Code, where the self-description is a docstring between triple quotes. As in the manual-page set
  (NAME removed, DESCRIPTION kept) the summary cannot copy the reference and has to lead with
  what the module says about itself.
- `summaries_man57.jsonl`: section 5 and 7 manual pages (file formats, overviews) WITH their NAME
  line kept: the page's own one-line summary is there, and a summary should lead with it. The
  reference is that NAME line's description.

    python3 benchmarks/devset/build_summary_sets.py            # build both corpus folders, write + verify the sets
    python3 benchmarks/devset/build_summary_sets.py --verify   # only verify

Deterministic: the module list is fixed, the pages are chosen by a fixed rule from the `manpages`
package, and the package versions are recorded in corpus/<set>.MANIFEST.json. Standard library
only (plus groff, through build_corpus.render_man). Never used here, by rule: the Python FAQ and
manual pages of sections 2 and 3 (independent checks).
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from build_corpus import name_description, render_man, strip_name_section  # noqa: E402

CORPUS = HERE / "corpus"
STDLIB = Path("/usr/lib/python3.11")
PACKAGES = {"py": "libpython3.11-stdlib", "man57": "manpages"}
APT_LINE = "apt-get update -qq && apt-get install -y -qq libpython3.11-stdlib manpages groff-base"

# Modules whose docstring has a one-line summary followed by a prose paragraph of 12+ words.
# Fixed, so the set is stable; private (_x) and Debian-specific modules are left out, and so are
# subprocess and tempfile, which repeat their summary line further down (checked again at build).
MODULES = [
    "aifc", "asynchat", "asyncore", "bz2", "calendar", "cgi", "chunk", "codeop", "compileall",
    "configparser", "copyreg", "difflib", "fnmatch", "ftplib", "getopt", "getpass", "gettext", "gzip",
    "heapq", "inspect", "ipaddress", "linecache", "locale", "lzma", "ntpath", "nturl2path", "operator",
    "os", "pickle", "pickletools", "plistlib", "posixpath", "pyclbr", "pydoc", "rlcompleter", "runpy",
    "sched", "selectors", "shelve", "shutil", "smtplib", "sndhdr", "socketserver", "statistics",
    "stringprep", "sunau", "telnetlib", "timeit", "tokenize", "trace",
    "typing", "uuid", "zipimport",
]
# Section 5/7 pages of `manpages`: every third of the sorted list, leaving out character-set
# tables (iso_8859-*, cp125*, koi8-*, ...), links to another page (svipc -> sysvipc) and pages
# longer than MAN_MAX_CHARS rendered.
MAN_SECTIONS = ("5", "7")
MAN_SKIP = re.compile(r"^(iso[-_]?8859|tis-620|cp\d|koi8|armscii|ascii|charsets|latin|utf-?8|unicode)")
MAN_EVERY = 3
MAN_MAX_CHARS = 40_000

FORMS = ("sentence", "bullets:3", "paragraph")
REQUESTS = {
    "py": {
        "sentence": ["Summarise the Python module {name} in one sentence.",
                     "In one sentence, what is the {name} module for?",
                     "Give a one-sentence summary of {name}.py."],
        "bullets:3": ["Summarise the module {name} in 3 bullet points.",
                      "What does the {name} module do? Answer with three bullet points."],
        "paragraph": ["Write a short paragraph summarising the Python module {name}.",
                      "Summarise {name}.py in a short paragraph."],
    },
    "man57": {
        "sentence": ["Summarise the manual page {name} in one sentence.",
                     "In one sentence, what is {name} about, according to its manual page?",
                     "Give a one-sentence summary of the {name} manual page."],
        "bullets:3": ["Summarise the manual page {name} in 3 bullet points.",
                      "What does the {name} manual page cover? Answer with three bullet points."],
        "paragraph": ["Write a short paragraph summarising the manual page {name}.",
                      "Summarise the {name} manual page in a short paragraph."],
    },
}
_OPEN_QUOTE = re.compile(r'^(\s*[rRuU]?(?:"""|\'\'\'))(.*)$')


def die(msg: str) -> None:
    print(f"build_summary_sets: {msg}", file=sys.stderr)
    sys.exit(2)


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def manifest_path(name: str) -> Path:
    """Beside the set's folder, not in it: ingesting the folder must find only its pages."""
    return CORPUS / f"summaries_{name}.MANIFEST.json"


def package_version(package: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                             check=False).stdout.strip()
    except FileNotFoundError:
        out = ""
    if not out:
        die(f"{package} is not installed; run: {APT_LINE}")
    return out


def without_summary_line(source: str) -> tuple[str, str] | None:
    """(the module source without its docstring's first line and the blank line after it, that
    line), or None when the module has no docstring of that shape."""
    tree = ast.parse(source)
    doc = ast.get_docstring(tree, clean=True)
    if not doc or not isinstance(tree.body[0], ast.Expr):
        return None
    paras = [p for p in doc.split("\n\n") if p.strip()]
    if len(paras) < 2 or "\n" in paras[0].strip() or len(paras[1].split()) < 12:
        return None
    summary = paras[0].strip()
    lines = source.split("\n")
    i = tree.body[0].lineno - 1
    m = _OPEN_QUOTE.match(lines[i])
    if not m:
        return None
    if m.group(2).strip() == summary:  # """Summary line.
        lines[i] = m.group(1)
        j = i + 1
    elif not m.group(2).strip() and lines[i + 1].strip() == summary:  # """\nSummary line.
        del lines[i + 1]
        j = i + 1
    else:
        return None
    if j < len(lines) and not lines[j].strip():
        del lines[j]
    return "\n".join(lines), summary


def build_py(out: Path) -> dict[str, dict]:
    pages: dict[str, dict] = {}
    for name in MODULES:
        src = STDLIB / f"{name}.py"
        cut = without_summary_line(src.read_text(encoding="utf-8")) if src.is_file() else None
        if cut is None:
            print(f"  {name}: missing, or its docstring is not of the expected shape; left out", file=sys.stderr)
            continue
        text, summary = cut
        if norm(summary) in norm(text):  # said again further down: the summary could be copied
            print(f"  {name}: its summary line occurs again in the module, left out", file=sys.stderr)
            continue
        (out / f"{name}.py").write_text(text, encoding="utf-8")
        pages[f"{out.name}/{name}.py"] = {"reference": summary, "source": str(src)}
    return pages


def build_man57(out: Path) -> dict[str, dict]:
    listed = subprocess.run(["dpkg-query", "-L", PACKAGES["man57"]], capture_output=True, text=True,
                            check=False).stdout.splitlines()
    candidates = sorted(p for p in listed if re.search(rf"/man/man[{''.join(MAN_SECTIONS)}]/[^/]+\.gz$", p)
                        and not MAN_SKIP.match(Path(p).name) and not Path(p).is_symlink())
    seen: set[str] = set()
    pages: dict[str, dict] = {}
    for src in candidates[::MAN_EVERY]:
        path = Path(src)
        text = render_man(path)
        _, name_line = strip_name_section(text)
        reference = name_description(name_line) if name_line else ""
        if not reference or len(text) > MAN_MAX_CHARS or reference == name_line or name_line in seen:
            print(f"  {path.name}: no NAME description, a link, or longer than {MAN_MAX_CHARS}; left out",
                  file=sys.stderr)
            continue
        seen.add(name_line)
        sec = path.parent.name  # man5, man7
        page = path.name.removesuffix(".gz").rsplit(".", 1)[0]
        (out / sec).mkdir(exist_ok=True)
        (out / sec / f"{page}.txt").write_text(text, encoding="utf-8")
        pages[f"{out.name}/{sec}/{page}.txt"] = {"reference": reference, "source": src}
    return pages


BUILDERS = {"py": build_py, "man57": build_man57}


def build(name: str) -> dict[str, dict]:
    out = CORPUS / f"summaries_{name}"
    version = package_version(PACKAGES[name])
    if out.exists() and any(out.iterdir()) and not manifest_path(name).exists():
        die(f"{out} exists, is not empty and was not made by this script; refusing to overwrite it")
    if out.exists():
        for old in sorted(out.rglob("*"), reverse=True):
            old.unlink() if old.is_file() else old.rmdir()
    out.mkdir(parents=True, exist_ok=True)
    pages = BUILDERS[name](out)
    files = [{"path": f.relative_to(CORPUS).as_posix(), "bytes": f.stat().st_size,
              "sha256": hashlib.sha256(f.read_bytes()).hexdigest()} for f in sorted(out.rglob("*")) if f.is_file()]
    manifest = {"built_by": "benchmarks/devset/build_summary_sets.py", "packages": {PACKAGES[name]: version},
                "summary_pages": pages, "files": files}
    manifest_path(name).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    print(f"build_summary_sets: {name}: {len(pages)} pages into {out}", file=sys.stderr)
    return pages


def write_set(name: str, pages: dict[str, dict]) -> None:
    rows = []
    for i, (rel, info) in enumerate(pages.items()):
        stem = Path(rel).stem
        form = FORMS[i % len(FORMS)]
        wordings = REQUESTS[name][form]
        label = stem if name == "py" else f"{stem}({Path(rel).parent.name[3:]})"
        rows.append({"path": rel, "reference": info["reference"],
                     "request": wordings[(i // len(FORMS)) % len(wordings)].format(name=label), "form": form,
                     "page": label, "package": PACKAGES[name]})
    (HERE / f"summaries_{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                 encoding="utf-8")


def verify(name: str) -> int:
    """Every request's page exists and its reference is the page's own line: removed from a module
    (and nowhere else in it), kept in a manual page's NAME section."""
    target = HERE / f"summaries_{name}.jsonl"
    pages = json.loads(manifest_path(name).read_text(encoding="utf-8"))["summary_pages"]
    failures = []
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines() if line.strip()]
    for n, row in enumerate(rows, 1):
        page = CORPUS / row["path"]
        if not page.is_file():
            failures.append(f"{target.name}:{n}: {row['path']} not in the corpus")
            continue
        text = norm(page.read_text(encoding="utf-8"))
        if norm(pages.get(row["path"], {}).get("reference", "")) != norm(row["reference"]):
            failures.append(f"{target.name}:{n}: reference differs from the page's own line")
        if (norm(row["reference"]) in text) != (name == "man57"):
            failures.append(f"{target.name}:{n}: the reference is {'not ' if name == 'man57' else ''}in {row['path']}")
        if row.get("form") not in FORMS:
            failures.append(f"{target.name}:{n}: form {row.get('form')!r}")
    for f in failures:
        print("  " + f, file=sys.stderr)
    print(f"build_summary_sets: {target.name}: {len(rows)} requests, {len(failures)} failures", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", choices=sorted(BUILDERS), default=sorted(BUILDERS))
    ap.add_argument("--verify", action="store_true", help="only verify existing builds against the set files")
    args = ap.parse_args(argv)
    failed = 0
    for name in args.sets:
        if not args.verify:
            write_set(name, build(name))
        failed |= verify(name)
    return failed


if __name__ == "__main__":
    sys.exit(main())

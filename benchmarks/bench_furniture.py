"""Page furniture left after loading: lines repeated across most pages of a manual, and navigation lines.

Loads every HTML page of each manual with `index.loaders.load_document` and counts, per manual,
the lines (digits folded, so "last modified on 2022-10-26" repeats) that occur on at least half
of its pages (a navigation bar, a header or footer, a sidebar), and the lines that read as
navigation ("Prev | Up | Home | Next"). Run it on two checkouts to compare loaders:

    python benchmarks/bench_furniture.py                       # this checkout
    python benchmarks/bench_furniture.py --root /tmp/base      # another one
"""
from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANUALS = {  # generator: folder (the dev set's, and Debian documentation packages when installed)
    "asciidoc (git)": ROOT / "benchmarks/devset/corpus/en/git",
    "SQLite's own (sqlite)": ROOT / "benchmarks/devset/corpus/en/sqlite",
    "DocBook (debian-faq)": ROOT / "benchmarks/devset/corpus/en/debian-faq",
    "DocBook (maint-guide)": Path("/usr/share/doc/maint-guide/html"),
    "DocBook (docbook-xsl-doc-html)": Path("/usr/share/doc/docbook-xsl-doc-html/doc/html"),
    "Sphinx (python-flask-doc)": Path("/usr/share/doc/python-flask-doc/html"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(ROOT), help="the checkout whose loader is measured")
    ap.add_argument("--show", type=int, default=0, help="print this many repeated lines per manual")
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    sys.path.insert(1, str(ROOT))
    from assistant.evaluation.ragged import has_navigation
    from index.loaders import load_document

    total_repeated = total_nav = 0
    for name, folder in MANUALS.items():
        pages = sorted(folder.glob("*.html")) if folder.is_dir() else []
        if not pages:
            print(f"{name}: not installed")
            continue
        seen: collections.Counter[str] = collections.Counter()
        nav = lines = 0
        for page in pages:
            try:
                doc = load_document(page, page.read_bytes())
            except Exception:  # noqa: BLE001 - a page the loader refuses has no furniture to count
                continue
            text = "\n".join(s.text for s in doc.sections)  # headings ("NAME", "OPTIONS") are structure
            page_lines = {re.sub(r"\d+", "0", ln.strip()) for ln in text.split("\n") if ln.strip()}
            seen.update(page_lines)
            lines += len(page_lines)
            nav += sum(has_navigation(ln) for ln in page_lines)
        repeated = {ln: n for ln, n in seen.items() if n >= max(3, len(pages) / 2)}
        occurrences = sum(repeated.values())
        total_repeated += occurrences
        total_nav += nav
        print(f"{name}: {len(pages)} pages, {lines} lines; repeated on half the pages: {len(repeated)} lines, "
              f"{occurrences} occurrences; navigation lines: {nav}")
        for ln, n in sorted(repeated.items(), key=lambda kv: -kv[1])[:args.show]:
            print(f"    {n:4d}  {ln[:90]}")
    print(f"all: repeated-line occurrences {total_repeated}, navigation lines {total_nav}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

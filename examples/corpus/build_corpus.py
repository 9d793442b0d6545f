#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Rebuilds corpus.jsonl from files shipped by Debian 12 packages.

Every source and its licence is listed in SOURCES.md; this script is the record
of how the texts were cut. Each source file is split at line boundaries into
documents of about CHUNK characters; every tenth document of a domain is held
out for validation (`split: "val"`). Text is reduced to printable ASCII plus
newline and tab (anything else becomes '?') so the char-level vocabulary stays
small and fixed.

    /usr/bin/python3 examples/corpus/build_corpus.py > examples/corpus/corpus.jsonl
"""
import gzip
import json
import os
import subprocess
import sys

CHUNK = 6000

LEGAL = ["GPL-3", "GPL-2", "LGPL-2.1", "LGPL-3", "Apache-2.0", "MPL-2.0",
         "Artistic", "BSD", "CC0-1.0", "GFDL-1.3"]
CODE = ["textwrap", "heapq", "bisect", "fnmatch", "shlex", "graphlib", "colorsys",
        "queue", "sched", "string", "contextlib", "functools"]
MAN = ["ls", "sort", "grep", "sed", "make", "gzip", "diff", "cut", "tr", "uniq",
       "xargs", "wc", "head", "date"]
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT"]


def read(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()


def man_page(name):
    env = dict(os.environ, MANWIDTH="78", LC_ALL="C", MAN_KEEP_FORMATTING="0")
    raw = subprocess.run(["man", "-P", "cat", name], env=env, check=True,
                         capture_output=True).stdout
    return subprocess.run(["col", "-bx"], input=raw, check=True,
                          capture_output=True).stdout.decode("ascii", "replace")


def sources():
    # (domain, source path or "man:NAME", licence, text)
    for name in LEGAL:
        path = f"/usr/share/common-licenses/{name}"
        yield "legal", path, "verbatim copying permitted (the licence text itself)", read(path)
    yield "legal", "/usr/lib/python3.11/LICENSE.txt", "PSF-2.0", read("/usr/lib/python3.11/LICENSE.txt")
    for mod in CODE:
        path = f"/usr/lib/python3.11/{mod}.py"
        yield "code", path, "PSF-2.0", read(path)
    for name in MAN:
        yield "docs", f"man:{name}", "GPL-3+", man_page(name)
    yield "prose", "/usr/share/doc/man-db/man-db-manual.txt.gz", "GPL-2+", read("/usr/share/doc/man-db/man-db-manual.txt.gz")
    yield "prose", "/usr/share/doc/bash/INTRO.gz", "GPL-3+", read("/usr/share/doc/bash/INTRO.gz")
    yield "prose", "/usr/share/doc/bash/README.gz", "GPL-3+", read("/usr/share/doc/bash/README.gz")
    yield "data", "/usr/share/zoneinfo/tzdata.zi", "public-domain", read("/usr/share/zoneinfo/tzdata.zi")[:90000]
    for loc in LOCALES:
        path = f"/usr/share/i18n/locales/{loc}"
        yield "data", path, "no copyright claimed (glibc locale data)", read(path)
    for name in ["debian.csv", "ubuntu.csv"]:
        path = f"/usr/share/distro-info/{name}"
        yield "data", path, "ISC", read(path)


def to_ascii(text):
    out = []
    for ch in text:
        o = ord(ch)
        out.append(ch if ch in "\n\t" or 32 <= o < 127 else "?")
    return "".join(out)


def chunks(text):
    lines = text.splitlines(keepends=True)
    cur, size = [], 0
    for line in lines:
        if size + len(line) > CHUNK and cur:
            yield "".join(cur)
            cur, size = [], 0
        cur.append(line)
        size += len(line)
    if cur:
        yield "".join(cur)


def main():
    counters = {}
    for domain, src, licence, text in sources():
        for part, doc in enumerate(chunks(to_ascii(text))):
            if not doc.strip():
                continue
            n = counters.get(domain, 0)
            counters[domain] = n + 1
            split = "val" if n % 10 == 9 else "train"
            rec = {"id": f"{domain}-{n:03d}", "domain": domain, "split": split,
                   "source": src, "part": part, "license": licence, "text": doc}
            sys.stdout.write(json.dumps(rec, ensure_ascii=True) + "\n")


if __name__ == "__main__":
    main()

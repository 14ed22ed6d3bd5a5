#!/usr/bin/env python3
"""Lists the import cycles between the Rust files of each crate's src/ (ARCHITECTURE.md).

A file imports another when it names a path into it (`crate::a::b`, `super::x`, `self::y`, or
`child::z` or `child::{y, z}` through a `mod child;` it declares);
`#[cfg(test)]` modules are left out, since tests may reach anywhere, and so are comments: a doc
link names a path for the reader, and the file builds without it. Each strongly connected
group of two or more files is printed, one line each, then the count; the exit status is 1
when there is any (the test command's `imports` step).

    python3 scripts/import_cycles.py [CRATE_DIR...]     (default: every crate of the workspace)
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES = [
    "core", "config", "dataset", "quantize", "host", "build-helper", "capi", "bench",
    "firmware", "firmware/train-small",
]
PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
GROUPED = re.compile(r"\b(crate|super|self)((?:::\w+)*)::\{([^}]*)\}", re.S)


def module_of(src, file):
    """The module path of `file` below src/ (lib.rs and main.rs are the root)."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return parts


def file_of(src, parts):
    """The file holding the longest prefix of module path `parts` that is a file."""
    for n in range(len(parts), 0, -1):
        for candidate in (src.joinpath(*parts[:n]).with_suffix(".rs"), src.joinpath(*parts[:n], "mod.rs")):
            if candidate.is_file():
                return candidate
    return None


def without_tests(text):
    """The text before the first `#[cfg(test)]` module."""
    match = re.search(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{", text)
    return text[: match.start()] if match else text


def without_comments(text):
    """The text with `//` comments (doc comments included) removed, line by line; a `//` after an
    odd number of quotes is inside a string and stays."""
    kept = []
    for line in text.split("\n"):
        cut = line.find("//")
        while cut != -1 and line[:cut].count('"') % 2 == 1:
            cut = line.find("//", cut + 2)
        kept.append(line if cut == -1 else line[:cut])
    return "\n".join(kept)


INLINE_MOD = re.compile(r"\bmod\s+(\w+)\s*\{")


def inline_modules(text):
    """The spans (start, end, name) of the `mod name { ... }` blocks written inside a file."""
    spans = []
    for match in INLINE_MOD.finditer(text):
        depth, i = 0, match.end() - 1
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        spans.append((match.start(), i, match.group(1)))
    return spans


def enclosing(spans, at):
    """The inline modules around position `at`, outermost first."""
    return [name for start, end, name in sorted(spans) if start <= at <= end]


def edges(src):
    files = sorted(src.rglob("*.rs"))
    graph = {f: set() for f in files}
    for file in files:
        here = module_of(src, file)
        text = without_comments(without_tests(file.read_text()))
        spans = inline_modules(text)
        # A path inside an inline module (generated code has them) starts from that module.
        paths = [(m.group(1), m.group(2), enclosing(spans, m.start())) for m in PATH.finditer(text)]
        # Paths through a child module the file declares (`mod pth;` ... `pth::read`).
        for child in re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M):
            paths += [("self", f"::{child}{rest}", []) for rest in re.findall(rf"\b{child}((?:::\w+)+)", text)]
            for prefix, group in re.findall(rf"\b{child}((?:::\w+)*)::\{{([^}}]*)\}}", text, re.S):
                for item in group.split(","):
                    item = item.strip().split(" as ")[0].split("::{")[0]
                    if item and item != "self":
                        paths.append(("self", f"::{child}{prefix}::{item}", []))
        for match in GROUPED.finditer(text):
            kind, prefix, group = match.groups()
            for item in group.split(","):
                item = item.strip().split(" as ")[0].split("::{")[0]
                if item and item != "self":
                    paths.append((kind, f"{prefix}::{item}", enclosing(spans, match.start())))
        for kind, path, inline in paths:
            parts = [p for p in path.split("::") if p]
            if kind == "crate":
                target = parts
            else:
                base = list(here) + inline
                if kind == "super":
                    base = base[:-1]
                    while parts and parts[0] == "super":
                        parts, base = parts[1:], base[:-1]
                target = base + parts
            found = file_of(src, target)
            if found and found != file:
                graph[file].add(found)
    return graph


def strongly_connected(graph):
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            groups.append(group)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return [g for g in groups if len(g) > 1]


def main():
    crates = sys.argv[1:] or CRATES
    total = 0
    for crate in crates:
        src = ROOT / crate / "src"
        for group in strongly_connected(edges(src)):
            total += 1
            names = sorted(str(f.relative_to(ROOT)) for f in group)
            print(f"{len(names)} files: {' '.join(names)}")
    print(f"{total} import cycle(s)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Import cycles between the modules of each crate of the workspace.

Reads every `src/**/*.rs` of the crates (tests, `#[cfg(test)]` modules and
comments left out), takes each path a module names (`use crate::a::b`,
`crate::a::f()`, `super::x`, `self::x`, with `use` braces expanded) as an
arrow to the deepest module of this crate it reaches, and prints every
group of modules that reach each other. An arrow between a module and one
that contains it (`artifact::io` -> `artifact`) is containment, not a
cycle, and is left out. Exits 1 if there is a cycle.

    python3 scripts/module_cycles.py
"""

import re
import sys
from pathlib import Path

CRATES = ["data", "model", "training", "serving", "python"]
ROOT = Path(__file__).resolve().parent.parent


def module_path(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts and parts[-1] in ("lib", "main", "mod"):
        parts.pop()
    if parts[:1] == ["bin"]:
        return ("bin",) + tuple(parts[1:])
    return tuple(parts)


def code_of(text: str) -> str:
    """The code before the first `#[cfg(test)]`, without comments, strings
    and character literals."""
    text = text.split("#[cfg(test)]")[0]
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            i = text.find("*/", i) + 2 or n
        elif re.match(r'r#*"', text[i:i + 8]):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif m := re.match(r"'(?:\\.[^']*|[^'\\])'", text[i:i + 12]):
            i += len(m.group(0))
            out.append("' '")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    body = rest[: rest.rindex("}")]
    items, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    return [head + x for item in items if item for x in expand(item)]


def names(code: str) -> list:
    found = []
    for tree in re.findall(r"\buse\s+([^;]+);", code):
        found += expand(tree)
    found += re.findall(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", code)
    return found


def resolve(name: str, here: tuple, modules: set):
    parts = name.split("::")
    if parts[0] == "crate":
        path, parts = (), parts[1:]
    elif parts[0] in ("super", "self"):
        path = here
        while parts and parts[0] in ("super", "self"):
            path = path[:-1] if parts[0] == "super" else path
            parts = parts[1:]
    else:
        return None
    best = path if path in modules else None
    for p in parts:
        path = path + (p,)
        if path in modules:
            best = path
    return best


def cycles(arrows: dict) -> list:
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in arrows.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in list(arrows):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    sys.setrecursionlimit(10_000)
    found = False
    for crate in CRATES:
        src = ROOT / crate / "src"
        files = {module_path(src, f): f for f in sorted(src.rglob("*.rs"))}
        modules = set(files)
        arrows = {}
        for here, file in files.items():
            for name in names(code_of(file.read_text())):
                to = resolve(name, here, modules)
                if to is None or to[: len(here)] == here or here[: len(to)] == to:
                    continue
                arrows.setdefault(here, set()).add(to)
        for group in cycles(arrows):
            found = True
            print(f"{crate}: cycle among " + ", ".join("::".join(m) for m in group))
            for m in group:
                for to in sorted(arrows.get(m, ())):
                    if to in group:
                        print(f"    {'::'.join(m)} -> {'::'.join(to)}")
    if not found:
        print("no import cycle between the modules of any crate")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Prints the import graph between the top-level modules of crates/hookd/src and exits 1 on a cycle.

A top-level module is a single file (`config.rs`) or a folder with its `mod.rs`/`<name>.rs` (`api/`);
an edge A -> B means some file of A names `crate::B` (in a `use` or a path). Any cycle fails, and so
does `store` importing one of its callers (FORBIDDEN). No dependencies.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "crates" / "hookd" / "src"
# Imports that fail the check even without a cycle: the store never reaches up to its callers.
FORBIDDEN = {"store": {"api", "app", "ops", "server", "ui", "worker"}}
ENTRY_FILES = {"lib.rs", "main.rs"}


def module_of(path):
    """The top-level module a source file belongs to, or None for the crate root."""
    relative = path.relative_to(ROOT)
    if len(relative.parts) > 1:
        return relative.parts[0]
    if relative.name in ENTRY_FILES:
        return None
    return relative.stem


def strip_comments(text):
    """Removes `//` comments (including `//!` and `///`), so that prose naming a module is no edge."""
    return re.sub(r"//[^\n]*", "", text)


def referenced_modules(text):
    """Top-level modules named as `crate::X`, or inside a group `use crate::{X, Y::{...}}`."""
    names = set(re.findall(r"\bcrate\s*::\s*([a-z_][a-z0-9_]*)", text))
    for match in re.finditer(r"\bcrate\s*::\s*\{", text):
        names.update(first_level_names(text, match.end()))
    return names


def first_level_names(text, start):
    """The first segment of each path in the `{...}` group that opens just before `start`."""
    names, depth, expecting_name = set(), 1, True
    for token in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*|::|[{},]", text[start:]):
        word = token.group()
        if word == "{":
            depth += 1
        elif word == "}":
            depth -= 1
            if depth == 0:
                break
        elif word == "," and depth == 1:
            expecting_name = True
        elif depth == 1 and expecting_name and word != "::":
            names.add(word)
            expecting_name = False
    return names


def import_graph():
    modules = {module_of(p) for p in ROOT.rglob("*.rs")} - {None}
    graph = {module: set() for module in modules}
    for path in ROOT.rglob("*.rs"):
        source = module_of(path)
        if source is None:
            continue
        text = strip_comments(path.read_text(encoding="utf-8"))
        for target in referenced_modules(text):
            if target in modules and target != source:
                graph[source].add(target)
    return graph


def cycles(graph):
    """Every elementary cycle, each once (rotated to start at its smallest name)."""
    found = set()

    def walk(start, node, path, on_path):
        for nxt in sorted(graph[node]):
            if nxt == start:
                found.add(tuple(path))
            elif nxt > start and nxt not in on_path:
                on_path.add(nxt)
                walk(start, nxt, path + [nxt], on_path)
                on_path.discard(nxt)

    for start in sorted(graph):
        walk(start, start, [start], {start})
    return sorted(found)


def main():
    graph = import_graph()
    print("import graph of crates/hookd/src (module -> modules it imports):")
    for module in sorted(graph):
        print(f"  {module:<12} -> {', '.join(sorted(graph[module])) or '(none)'}")
    failing = [
        "import cycle: " + " -> ".join(cycle + (cycle[0],)) for cycle in cycles(graph)
    ]
    for module, targets in sorted(FORBIDDEN.items()):
        for target in sorted(graph.get(module, set()) & targets):
            failing.append(f"forbidden import: {module} -> {target}")
    for text in failing:
        print(text, file=sys.stderr)
    if failing:
        return 1
    print("no import cycle, no forbidden import")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""scripts/check-module-cycles.py: fails when the gateway's modules import each other in a
cycle (issue 21: the relay and the control tap used to). Run from the repository root;
`--self-test` checks the checker on small planted trees.

For every module file of gateway/src (not bin/), outside comments and `#[cfg(test)]`
modules (cut by matching braces), it follows:
- every `use` path, with `{…}` groups expanded (nested too), `self::`, `super::` chains and
  `crate::` resolved;
- every `crate::…` and `super::…` path in the code;
- a bare path `name::…` whose first name the module brought in with `use` (e.g.
  `use super::{multipart}` then `multipart::copy_object`);
- a name the crate root re-exports (`crate::GatewayConfig`) to the module it comes from;
and links the module to the deepest module file the path names. A module's use of its own
submodules (`mod x;` and `x::…` from the parent) is structure, not an import: that link is
left out; a submodule's use of its parent's items counts. Any strongly connected component
of two or more modules (Tarjan) is a cycle: printed, and the exit code is 1.
"""

import os
import re
import sys


def strip_comments(text):
    """The text without // and /* */ comments, leaving string literals alone."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def cut_test_modules(text):
    """The text without `#[cfg(test)]` items' bodies (matched braces)."""
    out, pos = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", text):
        if m.start() < pos:
            continue
        brace = text.find("{", m.end())
        semi = text.find(";", m.end())
        if brace < 0 or (0 <= semi < brace):
            continue  # an attribute on a `use` or a unit item: nothing to cut
        depth, j = 0, brace
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        out.append(text[pos:m.start()])
        pos = j + 1
    out.append(text[pos:])
    return "".join(out)


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (a leading `::` dropped)."""
    tree = re.sub(r"\s+", "", tree).lstrip(":")
    i = tree.find("{")
    if i < 0:
        return [re.sub(r"(::\*|as\w+|::self)$", "", tree)] if tree else []
    prefix, inner = tree[:i], tree[i + 1:tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p in ("", "self"):
            out.append(prefix.rstrip(":"))
            continue
        out += expand_use(prefix + p)
    return out


def modules(root):
    """{module path ('crate', 'ftp::relay', ...): file}."""
    mods = {}
    for dp, _dn, fn in os.walk(root):
        if os.path.relpath(dp, root).split(os.sep)[0] == "bin":
            continue
        for f in fn:
            if f.endswith(".rs"):
                rel = os.path.relpath(os.path.join(dp, f), root)[:-3].replace(os.sep, "/")
                name = re.sub(r"(^|/)mod$", "", rel).replace("/", "::")
                mods["crate" if name in ("lib", "") else "crate::" + name] = os.path.join(dp, f)
    return mods


def graph(root):
    mods = modules(root)
    text = {m: cut_test_modules(strip_comments(open(p, encoding="utf-8").read())) for m, p in mods.items()}

    def resolve(path):
        """The deepest module a full `crate::…` path names."""
        parts = path.split("::")
        for i in range(len(parts), 0, -1):
            if "::".join(parts[:i]) in mods:
                return "::".join(parts[:i])
        return None

    def absolute(module, path):
        """`path` as written in `module` -> a `crate::…` path."""
        parts = path.split("::")
        here = module.split("::")
        if parts[0] == "crate":
            return path
        if parts[0] == "self":
            return "::".join(here + parts[1:])
        if parts[0] == "super":
            base = here
            while parts and parts[0] == "super":
                base = base[:-1]
                parts = parts[1:]
            return "::".join(base + parts)
        return None

    # What the crate root re-exports: `pub use a::b::{X, Y};` -> {'X': 'crate::a::b'}
    root_exports = {}
    for tree in re.findall(r"\bpub\s+use\s+([^;]+);", text["crate"]):
        for p in expand_use(tree):
            full = absolute("crate", p if p.startswith(("crate", "self", "super")) else "crate::" + p)
            if full:
                root_exports[full.split("::")[-1]] = resolve(full.rsplit("::", 1)[0]) or resolve(full)

    edges = {m: set() for m in mods}
    for m, body in text.items():
        targets = []
        imported = {}  # a name brought in by `use` -> its crate:: path
        for tree in re.findall(r"\buse\s+([^;]+);", body):
            for p in expand_use(tree):
                first = p.split("::")[0]
                full = absolute(m, p) if first in ("crate", "self", "super") else None
                if full is None and first in [k.split("::")[-1] for k in mods if k.count("::") == m.count("::") + 1 and k.startswith(m + "::")]:
                    full = m + "::" + p  # `use child::x` (2018 paths relative to the crate only in root)
                if full:
                    targets.append(full)
                    imported[full.split("::")[-1]] = full
        for p in re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", body):
            full = absolute(m, p)
            if full:
                targets.append(full)
        for name, full in imported.items():
            if re.search(r"\b" + re.escape(name) + r"::\w", body):
                targets.append(full)
        for full in targets:
            parts = full.split("::")
            if len(parts) == 2 and parts[1] in root_exports and root_exports[parts[1]]:
                t = root_exports[parts[1]]
            else:
                t = resolve(full)
            if not t or t == m:
                continue
            if t.startswith(m + "::"):
                continue  # a module using its own submodule
            edges[m].add(t)
    return edges


def cycles(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def self_test():
    """Plants each kind of import the checker must follow, and one it must not count."""
    import tempfile

    cases = {
        "group": ({"lib.rs": "mod a; mod b;", "a.rs": "use crate::{b::X};", "b.rs": "use crate::a::Y;"}, True),
        "bare path after use": ({"lib.rs": "mod s;", "s/mod.rs": "mod x; mod y;",
                                 "s/x.rs": "use super::{y}; fn f() { y::g(); }", "s/y.rs": "fn g() { super::x::h(); }"}, True),
        "super chain": ({"lib.rs": "mod t;", "t/mod.rs": "mod i; mod u;", "t/i/mod.rs": "mod c;",
                         "t/i/c.rs": "use super::super::u::X;", "t/u.rs": "use crate::t::i::c::Y;"}, True),
        "root re-export": ({"lib.rs": "mod a; mod b; pub use b::Z;", "a.rs": "use crate::Z;", "b.rs": "use crate::a::Q;"}, True),
        "nested group": ({"lib.rs": "mod f;", "f/mod.rs": "mod r; mod k;", "f/r.rs": "use crate::f::{k::{T}};",
                          "f/k.rs": "use crate::f::r::U;"}, True),
        "test module only": ({"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::X;",
                              "b.rs": "#[cfg(test)]\nmod tests { use crate::a::Y; }"}, False),
        "parent and child": ({"lib.rs": "mod p;", "p/mod.rs": "mod c; pub struct S; fn f() { c::g(); }",
                              "p/c.rs": "use super::S; pub fn g() {}"}, False),
    }
    failed = 0
    for name, (files, want) in cases.items():
        with tempfile.TemporaryDirectory() as d:
            for rel, body in files.items():
                os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
                with open(os.path.join(d, rel), "w", encoding="utf-8") as f:
                    f.write(body)
            got = bool(cycles(graph(d)))
        status = "ok" if got == want else "FAILED"
        failed += got != want
        print(f"self-test {name}: cycle {'found' if got else 'not found'} ({status})")
    return failed


def main():
    if "--self-test" in sys.argv:
        sys.exit(1 if self_test() else 0)
    found = cycles(graph("gateway/src"))
    for comp in found:
        print("import cycle: " + " -> ".join(c.removeprefix("crate::") for c in comp))
    if found:
        sys.exit(1)
    print("gateway/src: no import cycle between modules")


if __name__ == "__main__":
    main()

"""The architecture's import rules, read from the sources with ast (lazy imports inside
functions count too):

* ``seg2any/`` never imports ``nodes``, ``training`` or ``tests``, and only ``adapters/comfyui*.py``
  import ComfyUI;
* a subpackage of ``seg2any/`` imports only the parts its ``__init__`` docstring lists after
  "May import:" (and itself); ``errors.py`` imports nothing of the package;
* a node module imports no other node module, only ``nodes/common.py`` and ``nodes/types.py``
  (``nodes/__init__.py`` lists the node classes and may import them all).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "seg2any"
COMFY = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "latent_preview", "node_helpers", "execution"}
SHARED_NODE_MODULES = {"common", "types"}


def imports(path: Path) -> list[tuple[str, int]]:
    """(absolute dotted module, line) of every import in ``path``, relative ones resolved."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1])  # a module's package; an __init__'s own package
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # "from . import x": each x may be a module
                    out += [(f"{mod}.{a.name}", node.lineno) for a in node.names]
                    continue
            else:
                mod = node.module
            out.append((mod, node.lineno))
    return out


def part_of(module: str) -> str | None:
    """'seg2any.attention.rules' -> 'attention'; 'seg2any.errors' -> 'errors'; outside -> None."""
    parts = module.split(".")
    if parts[0] != "seg2any" or len(parts) < 2:
        return None
    return parts[1]


def allowed_parts() -> dict[str, set[str]]:
    rules = {"errors": set()}
    for init in sorted(PKG.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        m = re.search(r"^May import:(.*)$", doc, re.M)
        assert m, f"{init.relative_to(ROOT)}: the docstring must say what the package may import ('May import: ...')"
        rules[init.parent.name] = {p.strip() for p in m.group(1).split(",") if p.strip() and p.strip() != "nothing"}
    return rules


def test_every_listed_part_exists_and_the_order_has_no_cycle():
    rules = allowed_parts()
    parts = set(rules)
    for name, allowed in rules.items():
        assert allowed <= parts, f"{name} lists unknown parts {sorted(allowed - parts)}"
    done: set[str] = set()
    while len(done) < len(rules):  # peel off the parts whose allowed imports are all peeled off
        ready = {n for n, a in rules.items() if n not in done and a <= done}
        assert ready, f"the allowed imports of {sorted(set(rules) - done)} form a cycle"
        done |= ready


def test_seg2any_imports_follow_the_rules():
    rules = allowed_parts()
    problems = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        me = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for mod, line in imports(path):
            top = mod.split(".")[0]
            where = f"seg2any/{rel}:{line} imports {mod}"
            if top in ("nodes", "training", "tests"):
                problems.append(f"{where}: the library never imports {top}/")
            elif top in COMFY and not (me == "adapters" and rel.name.startswith("comfyui")):
                problems.append(f"{where}: only seg2any/adapters/comfyui*.py import ComfyUI")
            part = part_of(mod)
            if part is None or part == me or me == "__main__" or me == "__init__":
                continue
            if part not in rules.get(me, set()):
                problems.append(f"{where}: {me}/ may import only {sorted(rules.get(me, set()))}")
    assert not problems, "\n".join(problems)


def test_node_modules_do_not_import_each_other():
    problems = []
    for path in sorted((ROOT / "nodes").glob("*.py")):
        if path.name == "__init__.py":
            continue
        for mod, line in imports(path):
            parts = mod.split(".")
            if parts[0] == "nodes" and len(parts) > 1 and parts[1] not in SHARED_NODE_MODULES:
                problems.append(f"nodes/{path.name}:{line} imports {mod}: share it through nodes/common.py or seg2any/")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source, expect", [
    ("from ..attention.rules import MaskRule\n", [("seg2any.attention.rules", 1)]),
    ("from . import spec\n", [("seg2any.flux.spec", 1)]),
    ("def f():\n    import comfy.sd\n", [("comfy.sd", 2)]),
])  # fmt: skip
def test_the_checker_resolves_relative_and_lazy_imports(tmp_path, monkeypatch, source, expect):
    """The rules above are only as good as this resolution; a file in seg2any/flux/ as the example."""
    fake_root = tmp_path
    (fake_root / "seg2any" / "flux").mkdir(parents=True)
    f = fake_root / "seg2any" / "flux" / "x.py"
    f.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    assert imports(f) == expect

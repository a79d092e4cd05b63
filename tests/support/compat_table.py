"""The README's compatibility table (ComfyUI version x tier x result), made from what a CI run ran.

``.ci/run`` writes one JUnit XML file per ComfyUI tree into a results folder; this module turns
them into the Markdown table, prints it, and checks the README's copy says the same (versions,
frontends, and which tiers pass; the test counts may differ from run to run). ``--write`` puts a
run's table into the README.

    python -m tests.support.compat_table RESULTS_DIR [--check README.md | --write README.md]
"""

from __future__ import annotations

import os
import re
import sys
import xml.etree.ElementTree as ET

TIERS = ("core", "comfyui", "browser")
START, END = "<!-- compat-table:start -->", "<!-- compat-table:end -->"


def tree_facts(comfy_path: str) -> tuple[str, str]:
    """(ComfyUI version, pinned frontend version) of a ComfyUI source tree."""
    version = frontend = "?"
    with open(os.path.join(comfy_path, "comfyui_version.py"), encoding="utf-8") as f:
        m = re.search(r'__version__\s*=\s*"([^"]+)"', f.read())
        version = m.group(1) if m else version
    with open(os.path.join(comfy_path, "requirements.txt"), encoding="utf-8") as f:
        m = re.search(r"^comfyui-frontend-package==(\S+)", f.read(), re.M)
        frontend = m.group(1) if m else frontend
    return version, frontend


def tier_counts(junit_path: str) -> dict[str, dict[str, int]]:
    """tier -> {passed, failed, skipped} from one pytest JUnit XML file."""
    counts = {t: {"passed": 0, "failed": 0, "skipped": 0} for t in TIERS}
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        parts = case.get("classname", "").split(".")
        tier = parts[1] if len(parts) > 1 and parts[0] == "tests" else None
        if tier not in counts:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            counts[tier]["failed"] += 1
        elif case.find("skipped") is not None:
            counts[tier]["skipped"] += 1
        else:
            counts[tier]["passed"] += 1
    return counts


def cell(c: dict[str, int]) -> str:
    if not any(c.values()):
        return "not run"
    word = "fails" if c["failed"] else "passes"
    extra = f", {c['failed']} failed" if c["failed"] else ""
    return f"{word} ({c['passed']} passed{extra}, {c['skipped']} skipped)"


def table(results_dir: str) -> str:
    """One row per ``<version>.xml`` (with ``<version>.tree`` naming the ComfyUI tree), oldest first."""
    rows = []
    for name in os.listdir(results_dir):
        if not name.endswith(".xml"):
            continue
        with open(os.path.join(results_dir, name[:-4] + ".tree"), encoding="utf-8") as f:
            version, frontend = tree_facts(f.read().strip())
        counts = tier_counts(os.path.join(results_dir, name))
        rows.append((tuple(int(x) if x.isdigit() else 0 for x in version.split(".")), version, frontend, counts))
    lines = ["| ComfyUI | frontend | " + " | ".join(TIERS) + " |", "|---|---|" + "---|" * len(TIERS)]
    for _, version, frontend, counts in sorted(rows):
        lines.append(f"| {version} | {frontend} | " + " | ".join(cell(counts[t]) for t in TIERS) + " |")
    return "\n".join(lines)


def _shape(md: str) -> list[str]:
    """A table's rows without the test counts (they change with every test added)."""
    return [re.sub(r" \([^)]*\)", "", line) for line in md.strip().splitlines()]


def readme_table(readme: str) -> str:
    text = open(readme, encoding="utf-8").read()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} section")
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str]) -> int:
    results, mode, readme = argv[0], argv[1] if len(argv) > 1 else None, argv[2] if len(argv) > 2 else "README.md"
    md = table(results)
    print(md)
    if mode == "--write":
        text = open(readme, encoding="utf-8").read()
        head, rest = text.split(START, 1)
        open(readme, "w", encoding="utf-8").write(f"{head}{START}\n{md}\n{END}{rest.split(END, 1)[1]}")
    elif mode == "--check" and _shape(readme_table(readme)) != _shape(md):
        print(f"\n{readme}'s compatibility table does not say what this run found:\n{readme_table(readme)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The frontend packages a ComfyUI snapshot pins, unpacked beside the venv.

Each ComfyUI release pins its own ``comfyui-frontend-package``, ``comfyui-workflow-templates`` and
``comfyui-embedded-docs``; the venv can hold only one set, and a mismatched templates package
stops an older server at start-up (0.3.64 expects ``comfyui_workflow_templates/templates``, which
the 0.7 packages no longer have). So each snapshot gets its own folder::

    pip install --target .cache/comfy-kits/<ComfyUI version> <the three pinned requirements>

and the test server runs with that folder first on PYTHONPATH (``kit_env``). Without one the
venv's packages are used, as before.
"""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KITS_DIR = os.environ.get("SEG2ANY_COMFY_KITS", os.path.join(ROOT, ".cache", "comfy-kits"))
PINNED = ("comfyui-frontend-package", "comfyui-workflow-templates", "comfyui-embedded-docs")


def comfy_version(comfy_path: str) -> str | None:
    try:
        with open(os.path.join(comfy_path, "comfyui_version.py"), encoding="utf-8") as f:
            m = re.search(r"""__version__\s*=\s*["']([^"']+)""", f.read())
    except OSError:
        return None
    return m.group(1) if m else None


def pinned(comfy_path: str) -> dict[str, str]:
    """{package: version} of the frontend packages the checkout's requirements.txt pins."""
    try:
        with open(os.path.join(comfy_path, "requirements.txt"), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return {}
    return {m.group(1): m.group(2) for m in re.finditer(r"^(comfyui-[\w-]+)==([\w.]+)", text, re.M) if m.group(1) in PINNED}


def kit_dir(comfy_path: str) -> str | None:
    """The unpacked kit for this checkout, if one was installed."""
    v = comfy_version(comfy_path)
    d = os.path.join(KITS_DIR, v) if v else None
    return d if d and os.path.isdir(os.path.join(d, "comfyui_frontend_package")) else None


def install_command(comfy_path: str) -> str:
    v = comfy_version(comfy_path) or "<version>"
    reqs = " ".join(f"{k}=={x}" for k, x in pinned(comfy_path).items())
    return f"pip install --target {os.path.join(KITS_DIR, v)} {reqs}"


def kit_env(comfy_path: str, env: dict) -> dict:
    """``env`` with the checkout's kit (if any) in front of PYTHONPATH."""
    d = kit_dir(comfy_path)
    if d is None:
        return env
    out = dict(env)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (d, env.get("PYTHONPATH", "")) if p)
    return out


def installed_version(comfy_path: str, package: str) -> str | None:
    """The version of ``package`` the server of this checkout will import (kit first, then venv)."""
    d = kit_dir(comfy_path)
    dist = package.replace("-", "_")
    if d:
        for name in os.listdir(d):
            if name.startswith(dist + "-") and name.endswith(".dist-info"):
                return name[len(dist) + 1 : -len(".dist-info")]
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None

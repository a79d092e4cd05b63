"""Browser tier: a real ComfyUI server with the pack and Debian's headless Chromium, one of each for
the whole session; every test gets a freshly loaded frontend page whose screenshots go to
test-artifacts/browser/<frontend version>/<test>/.

Missing chromium / chromedriver / selenium, ComfyUI or the pinned frontend: the tier is skipped
with one loud reason, or fails when CI=true (CI must never pass without running it)."""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import COMFYUI_PATH, HAVE_COMFY, IN_CI


def tier_problem() -> str | None:
    """Why the browser tier cannot run here (None: it can)."""
    if not HAVE_COMFY:
        return f"no ComfyUI checkout at COMFYUI_PATH={COMFYUI_PATH}"
    from tests.support import browser

    missing = browser.missing_prerequisites()
    if missing:
        return "missing " + ", ".join(missing)
    problem, _ = browser.frontend_problem(COMFYUI_PATH)
    return problem


def skip_or_fail(problem: str):
    msg = f"browser tier SKIPPED: {problem}"
    if IN_CI:
        pytest.fail(f"CI=true but the browser tier cannot run: {problem}", pytrace=False)
    pytest.skip(msg)


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: real ComfyUI frontend in headless Chromium (tests/browser)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if f"{os.sep}browser{os.sep}" in str(item.fspath):
            item.add_marker("browser")


def place_declared_models(base: str) -> None:
    """Empty stand-ins for the model files the templates declare (properties.models), as a user who
    downloaded them has: frontends from 1.4x flag a loader whose file is missing as an error, which
    would hide real load errors. The file names come from the templates themselves."""
    import glob
    import json

    from tests.conftest import ROOT

    for path in glob.glob(os.path.join(ROOT, "example_workflows", "*.json")):
        with open(path, encoding="utf-8") as f:
            nodes = json.load(f)["nodes"]
        for node in nodes:
            for m in node.get("properties", {}).get("models", []):
                target = os.path.join(base, "models", m["directory"], m["name"])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "wb").close()


@pytest.fixture(scope="session")
def comfy_browser(tmp_path_factory):
    """(server, webdriver, frontend version): one ComfyUI + one Chromium for the session."""
    problem = tier_problem()
    if problem:
        skip_or_fail(problem)
    from tests.support import browser
    from tests.support.server import ComfyServer, clean

    _, version = browser.frontend_problem(COMFYUI_PATH)
    base = str(tmp_path_factory.mktemp("browser-comfy"))
    browser.seed_user_settings(base)
    place_declared_models(base)
    server = ComfyServer(COMFYUI_PATH, base).start()
    try:
        driver = browser.start_chromium()
    except Exception:
        server.stop()
        raise
    yield server, driver, version
    browser.stop_chromium(driver)
    server.stop()
    clean(base)


@pytest.fixture
def page(comfy_browser, request):
    """A freshly opened frontend; screenshots under test-artifacts/browser/<version>/<test id>/."""
    from tests.support import browser

    server, driver, version = comfy_browser
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", request.node.name.replace("test_", "", 1)).strip("_")
    p = browser.ComfyPage(driver, server, version, os.path.join(browser.ARTIFACTS, version, name)).open()
    yield p
    p.save_console()

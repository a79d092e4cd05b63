"""Makes the browser tier's state visible in every run: one line saying it runs (which frontend,
which chromium) or why it is skipped; with CI=true a missing prerequisite fails here."""

from tests.browser.conftest import skip_or_fail, tier_problem


def test_browser_tier_available():
    problem = tier_problem()
    if problem:
        skip_or_fail(problem)
    from tests.conftest import COMFYUI_PATH
    from tests.support import browser

    _, version = browser.frontend_problem(COMFYUI_PATH)
    assert version.count(".") == 2, version

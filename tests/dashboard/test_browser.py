"""A real browser (headless Chromium via Selenium) signs in, opens a coredump and launches its viewer."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coredumps import viewer as v
from coredumps.kube import KubeClient
from flows.viewer import viewer
from tests.dashboard.conftest import TOKEN, Filled, Served, stored_id
from tests.kubefake import FakeKubeServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 60.0

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists() or not Path(CHROMEDRIVER).exists(),
                       reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"),
    pytest.mark.slow,
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def test_launch_viewer_from_the_browser_lists_it_with_its_expiry(
        browser: Any, dashboard: Callable[..., Served], filled: Filled, kube: FakeKubeServer) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    client = KubeClient.for_url(kube.url)
    cfg = filled.cfg

    def launch(coredump_id: int, minutes: int) -> dict[str, Any]:
        return viewer(coredump_id=coredump_id, minutes=minutes, config_path=str(filled.config_path))

    def lister(coredump_id: int) -> list[v.Viewer]:
        pods, _ = client.list_pods(cfg.dashboard.viewer_namespace, label_selector=v.selector_for(coredump_id))
        return v.viewers(pods, cfg.dashboard.viewer)

    d = dashboard(launcher=launch, viewer_lister=lister)
    cid = stored_id(filled)
    wait = WebDriverWait(browser, WAIT)
    try:
        browser.get(f"{d.url}{d.base}/")
        assert browser.find_element(By.ID, "token")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "sign-in").click()
        wait.until(ec.presence_of_element_located((By.ID, "count-coredumps")))
        assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"

        browser.find_element(By.LINK_TEXT, "Coredumps").click()
        wait.until(ec.presence_of_element_located((By.ID, "coredumps")))
        browser.find_element(By.CSS_SELECTOR, f'a.coredump-link[href="{d.base}/coredumps/{cid}"]').click()
        wait.until(ec.presence_of_element_located((By.ID, "launch-viewer")))
        assert "No viewer is running" in browser.find_element(By.ID, "viewers").text

        browser.find_element(By.ID, "launch-viewer").click()
        wait.until(ec.presence_of_element_located((By.ID, "launched")))
        expires = browser.find_element(By.CSS_SELECTOR, "tr.viewer td.expires").text
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", expires)
        row = browser.find_element(By.CSS_SELECTOR, "tr.viewer").text
        assert f"default/coredump-viewer-{cid}" in row and ":7681/" in row
    finally:
        client.close()
    pod = kube.get("pods", "default", f"coredump-viewer-{cid}")
    assert pod is not None
    shown = v.parse_time(pod["metadata"]["annotations"][v.EXPIRES_ANNOTATION])
    assert shown is not None and shown.strftime("%Y-%m-%d %H:%M:%S UTC") == expires

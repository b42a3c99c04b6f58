"""The live status page (`/`) in a real browser: headless Chromium driven by Selenium
loads it from a real daemon's HTTP listener and shows the tracked entries; a process
killed here turns its row dead within a second, with no reload; the filter box and a
column's sort work; a daemon that asks for a token is read with `#token=`; on a
phone-sized window nothing spills sideways.  A screenshot of each page is saved as a
test artifact (in $GOPROC_TEST_ARTIFACTS when set, else the test's temp dir).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Daemon

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="chromium and chromium-driver are not installed (.ci/run installs them)",
)
HTTP = {"http_listen": "127.0.0.1:0", "metrics_interval": "200ms"}


def artifact(tmp_path: Path, name: str) -> Path:
    where = Path(os.environ.get("GOPROC_TEST_ARTIFACTS", tmp_path))
    where.mkdir(parents=True, exist_ok=True)
    return where / name


@pytest.fixture
def browser() -> Iterator[Callable[..., Any]]:
    drivers: list[Any] = []

    def start(width: int = 1280, height: int = 900) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
            options.add_argument(arg)
        options.add_argument(f"--window-size={width},{height}")
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        drivers.append(driver)
        return driver

    yield start
    for d in drivers:
        d.quit()


def address(d: Daemon) -> str:
    return str(d.call("status")["http"])


def rows(driver: Any) -> dict[str, list[str]]:
    """The table's rows by entry name: their cells' text."""
    out = {}
    for tr in driver.find_elements(By.CSS_SELECTOR, "#procs tbody tr"):
        cells = [td.get_attribute("textContent") for td in tr.find_elements(By.TAG_NAME, "td")]
        out[cells[1]] = cells
    return out


def wait_for(driver: Any, what: Callable[[], Any], timeout: float = 10.0) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(lambda _: what())


def test_the_page_shows_the_entries_and_an_exit_within_a_second(
    spawn_daemon: Callable[..., Daemon],
    sleeper: Callable[..., subprocess.Popen[bytes]],
    browser: Callable[..., Any],
    tmp_path: Path,
) -> None:
    d = spawn_daemon(HTTP)
    web, db = sleeper(), sleeper()
    d.call("add", {"pid": web.pid, "name": "web", "tags": ["front"]})
    d.call("add", {"pid": db.pid, "name": "db", "groups": ["prod"]})
    driver = browser()
    driver.get(f"http://{address(d)}/")
    wait_for(driver, lambda: {"web", "db"} <= rows(driver).keys())
    wait_for(driver, lambda: driver.find_element(By.ID, "state").text == "live")
    shown = rows(driver)
    assert shown["web"][2] == str(web.pid) and shown["web"][3] == "yes"
    assert shown["web"][7] == "front" and shown["db"][8] == "prod"
    assert shown["db"][9] == "sleep 300"
    # CPU% and MEM come with the samples (the page fetches them again every 5 s).
    wait_for(driver, lambda: rows(driver)["web"][5] != "-", 15)
    driver.save_screenshot(str(artifact(tmp_path, "page-live.png")))

    killed_at = time.monotonic()
    web.kill()
    wait_for(driver, lambda: rows(driver)["web"][3] == "no", 5)
    took = time.monotonic() - killed_at
    assert took <= 1.0, f"the row turned dead {took:.2f}s after the kill"
    assert "dead" in driver.find_element(By.CSS_SELECTOR, "#procs tbody tr.dead").get_attribute(
        "class"
    )
    assert rows(driver)["db"][3] == "yes"
    driver.save_screenshot(str(artifact(tmp_path, "page-exit.png")))


def test_the_filter_box_and_a_columns_sort(
    spawn_daemon: Callable[..., Daemon],
    sleeper: Callable[..., subprocess.Popen[bytes]],
    browser: Callable[..., Any],
) -> None:
    d = spawn_daemon(HTTP)
    pids = {}
    for name in ("bravo", "alpha", "charlie"):
        p = sleeper()
        pids[name] = p.pid
        d.call("add", {"pid": p.pid, "name": name, "tags": [f"t-{name}"]})
    driver = browser()
    driver.get(f"http://{address(d)}/")
    wait_for(driver, lambda: len(rows(driver)) == 3)
    box = driver.find_element(By.ID, "filter")
    box.send_keys("t-alpha")
    wait_for(driver, lambda: list(rows(driver)) == ["alpha"])
    assert "1 shown" in driver.find_element(By.ID, "summary").text
    box.clear()
    box.send_keys(" ")  # an input event with nothing to filter on
    wait_for(driver, lambda: len(rows(driver)) == 3)
    header = driver.find_element(By.CSS_SELECTOR, 'th[data-key="name"]')
    header.click()
    wait_for(driver, lambda: list(rows(driver)) == ["alpha", "bravo", "charlie"])
    header.click()
    wait_for(driver, lambda: list(rows(driver)) == ["charlie", "bravo", "alpha"])
    assert header.get_attribute("aria-sort") == "descending"


def test_a_daemon_with_a_token_is_read_with_the_token_in_the_address(
    spawn_daemon: Callable[..., Daemon],
    sleeper: Callable[..., subprocess.Popen[bytes]],
    browser: Callable[..., Any],
) -> None:
    d = spawn_daemon({**HTTP, "http_token": "s3cret-token"})
    p = sleeper()
    d.call("add", {"pid": p.pid, "name": "guarded"})
    driver = browser()
    driver.get(f"http://{address(d)}/#token=wrong")
    wait_for(driver, lambda: "401" in driver.find_element(By.ID, "state").text)
    assert rows(driver) == {}
    driver.get("about:blank")
    driver.get(f"http://{address(d)}/#token=s3cret-token")
    wait_for(driver, lambda: "guarded" in rows(driver))


def test_on_a_phone_sized_window_nothing_spills_sideways(
    spawn_daemon: Callable[..., Daemon],
    sleeper: Callable[..., subprocess.Popen[bytes]],
    browser: Callable[..., Any],
    tmp_path: Path,
) -> None:
    d = spawn_daemon(HTTP)
    p = sleeper("sleep", "301")
    d.call("add", {"pid": p.pid, "name": "a-rather-long-entry-name", "tags": ["x", "y"]})
    driver = browser(390, 844)
    driver.get(f"http://{address(d)}/")
    wait_for(driver, lambda: "a-rather-long-entry-name" in rows(driver))
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the window"
    cmd = driver.find_element(By.CSS_SELECTOR, "#procs tbody td.cmd")
    assert not cmd.is_displayed(), "the command column is left out on a phone"
    driver.save_screenshot(str(artifact(tmp_path, "page-phone.png")))

"""The Dagster UI in real headless Chromium against a real ``dagster dev`` on 127.0.0.1.

Checks that the asset graph and the catalog show every asset of the code location, that one partition of
``raw_annotations`` materializes from the UI (Materialize, partition dialog, Launch) and succeeds, and that
the asset's checks appear on its page. Screenshots go to ``EEMO_TEST_ARTIFACTS`` (default
``.eemo/test-artifacts/ui/``). Skipped only when no Chromium binary is installed (``scripts/test.sh``
installs Debian's ``chromium`` and ``chromium-driver`` when it runs as root with apt).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
PARTITION = "emotion6"
# Flags that keep Chromium from reaching out (without them its connections get refused en masse here).
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--window-size=1600,1000",
)
STARTUP_TIMEOUT_S = 180
RUN_TIMEOUT_S = 300
UI_TIMEOUT_S = 90

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium chromium-driver)"),
]


def _artifacts_dir() -> Path:
    path = Path(os.environ.get("EEMO_TEST_ARTIFACTS") or REPO / ".eemo" / "test-artifacts" / "ui")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _log_tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def _wait(condition: Callable[[], object], timeout_s: float, what: str, interval_s: float = 1.0):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # the page re-renders under us; try again
            last_error = error
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}" + (f" ({last_error!r})" if last_error else ""))


class DagsterDev:
    def __init__(self, url: str, home: Path, log: Path) -> None:
        self.url, self.home, self.log = url, home, log


@pytest.fixture(scope="module")
def dagster_dev() -> Iterator[DagsterDev]:
    from eemo_pipeline.sample import write_sample
    from eemo_pipeline.settings import root_variable

    work = Path(tempfile.mkdtemp(prefix="eemo-ui-"))
    home, storage = work / "dagster_home", work / "storage"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    roots = write_sample(work / "sample", [PARTITION])
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "EEMO_STORAGE": str(storage),
           root_variable(PARTITION): str(roots[PARTITION])}
    log = work / "dagster-dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(dagster), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the webserver, daemon and code servers end with it
        )
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"dagster dev exited with {process.returncode}:\n{_log_tail(log)}")
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200

    try:
        try:
            _wait(serving, STARTUP_TIMEOUT_S, f"dagster dev to serve {url}")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{_log_tail(log)}") from None
        yield DagsterDev(url, home, log)
    finally:
        # Ctrl-C to the whole group (what dagster dev expects), then kill whatever is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if CHROMEDRIVER is None:
        pytest.fail("chromium is installed but chromedriver is not: apt-get install chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="eemo-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(UI_TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """Small helpers over a Selenium driver for a React app that re-renders while we look."""

    def __init__(self, driver, base_url: str, artifacts: Path) -> None:
        self.driver, self.base_url, self.artifacts = driver, base_url, artifacts

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_for_text(self, *needles: str, timeout_s: float = UI_TIMEOUT_S) -> str:
        def shown() -> str | None:
            self.dismiss_popups()
            text = self.text()
            return text if all(needle in text for needle in needles) else None

        return _wait(shown, timeout_s, f"{needles} on {self.driver.current_url}")

    def click(self, xpath: str, what: str, timeout_s: float = UI_TIMEOUT_S) -> None:
        from selenium.webdriver.common.by import By

        def attempt() -> bool:
            self.dismiss_popups()  # the community dialog can open a few seconds after the page
            for element in self.driver.find_elements(By.XPATH, xpath):
                if element.is_displayed() and element.is_enabled():
                    element.click()
                    return True
            return False

        _wait(attempt, timeout_s, f"{what} to be clickable on {self.driver.current_url}", interval_s=0.5)

    def dismiss_popups(self) -> None:
        """The first visits show a "Join the Dagster community" dialog (after a delay); skip it. A "Skip" button
        that another dialog covers (or that re-renders away) is left alone: the next look tries again."""
        from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
        from selenium.webdriver.common.by import By

        for button in self.driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            try:
                if button.is_displayed():
                    button.click()
            except (ElementClickInterceptedException, StaleElementReferenceException):
                continue

    def screenshot(self, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture
def page(browser, dagster_dev: DagsterDev, request: pytest.FixtureRequest) -> Iterator[Page]:
    browser.set_window_size(1600, 1000)
    page = Page(browser, dagster_dev.url, _artifacts_dir())
    yield page
    page.screenshot(f"last-page-{request.node.name}")  # where a failing test stopped


def _asset_groups() -> dict[str, str]:
    """Asset name -> group name, for every asset of the code location."""
    from eemo_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key).group_name for key in sorted(graph.get_all_asset_keys())}


def _shown_as(name: str, label: str) -> bool:
    """The graph middle-truncates long names when zoomed out (``descripti…_answers``)."""
    if "…" not in label:
        return label == name
    head, _, tail = label.partition("…")
    return name.startswith(head) and name.endswith(tail) and len(head) + len(tail) < len(name)


def test_catalog_and_graph_show_every_asset(page: Page) -> None:
    groups = _asset_groups()
    names = sorted(groups)
    assert len(names) >= 15
    # The catalog renders only the rows in view: a window tall enough for every asset (and the whole graph).
    page.driver.set_window_size(1600, 400 + 80 * len(names))
    page.open("/assets")
    catalog = page.wait_for_text(*names)
    assert "eemo_pipeline.definitions" in catalog
    page.screenshot("01-asset-catalog")

    from selenium.webdriver.common.by import By

    expanded = ",".join(f"global@global:{group}" for group in sorted(set(groups.values())))
    page.open(f"/asset-groups/?expanded={quote(expanded)}")
    page.dismiss_popups()

    def graph_labels() -> list[str] | None:
        labels = [e.get_attribute("textContent").strip()
                  for e in page.driver.find_elements(By.CSS_SELECTOR, "[class*='AssetNode_assetName']")]
        return labels if len(labels) >= len(names) else None

    labels = _wait(graph_labels, UI_TIMEOUT_S, f"{len(names)} asset nodes in the graph")
    missing = [name for name in names if not any(_shown_as(name, label) for label in labels)]
    page.screenshot("02-asset-graph")
    assert not missing, f"assets not in the graph: {missing} (nodes: {labels})"


def test_partition_materializes_from_the_ui_and_checks_appear(page: Page, dagster_dev: DagsterDev) -> None:
    from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

    page.open("/assets/raw_annotations")
    page.wait_for_text("raw_annotations", "Materialize")
    page.click("//button[starts-with(normalize-space(), 'Materialize')]", "the Materialize button")
    page.wait_for_text("Launch runs to materialize raw_annotations", "Partition selection")
    page.click("//*[contains(@class, 'TagSelector_placeholder')]", "the partition selector")
    page.click(f"//span[normalize-space()='{PARTITION}']", f"partition {PARTITION} in the dialog")
    # Close the partition menu by clicking the dialog title, then launch.
    page.click("//*[starts-with(normalize-space(text()), 'Launch runs to materialize')]", "the dialog title")
    page.screenshot("03-materialize-dialog")
    page.click("//button[normalize-space()='Launch 1 run']", "Launch 1 run")

    with DagsterInstance.from_config(str(dagster_dev.home)) as instance:
        def finished_run():
            runs = instance.get_runs(RunsFilter(tags={"dagster/partition": PARTITION}))
            return runs[0] if runs and runs[0].is_finished else None

        try:
            run = _wait(finished_run, RUN_TIMEOUT_S, f"the UI-launched run of raw_annotations[{PARTITION}] to finish",
                        interval_s=2)
        except AssertionError as error:
            page.screenshot("04-run-not-finished")
            raise AssertionError(f"{error}\n{_log_tail(dagster_dev.log)}") from None
        assert run.status == DagsterRunStatus.SUCCESS, f"run {run.run_id} ended {run.status}:\n{_log_tail(dagster_dev.log)}"
        assert run.tags.get("dagster/partition") == PARTITION
        event = instance.get_latest_materialization_event(AssetKey("raw_annotations"))
        assert event is not None and event.dagster_event.partition == PARTITION

    page.open(f"/runs/{run.run_id}")
    page.wait_for_text("RUN_SUCCESS")
    page.screenshot("04-run-succeeded")
    page.open("/runs")
    page.wait_for_text(run.run_id[:8], "Success")

    page.open("/assets/raw_annotations?view=checks")
    checks = page.wait_for_text("contract", "quarantine_share", "This is a blocking asset check.", "Passed")
    assert "Succeeded" in checks
    page.screenshot("05-asset-checks")


"""The dashboard in a real browser: Debian's headless Chromium (through Selenium and
/usr/bin/chromedriver, nothing downloaded) loads the page from the API server serving the real
demo day of `conftest.served`, and the numbers it shows are the ledgers' and the chain's.

Saves a screenshot under the test's tmp folder; with CISE_SAVE_SCREENSHOT=1 also to
docs/dashboard.png (the README's picture).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from eth_account import Account

from assets.ledger import revenue_totals
from assets.ledger_store import LedgerStore
from channels.chain.financing import FinancingPoolClient
from channels.core.types import to_checksum
from cise.demo_bundles import MACHINES, POOL_MACHINE, asset_id_of
from cise.money import euro

# One worker builds the demo day that `served` serves (a session fixture), not each worker.
pytestmark = pytest.mark.xdist_group("api-served")

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

    from tests.api.conftest import Served

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
LOAD_TIMEOUT_S = 30.0


def test_the_browser_is_installed() -> None:
    """The test command installs Debian's Chromium and ChromeDriver (scripts/bootstrap.sh): the
    browser test below must never be skipped for want of them."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "run scripts/bootstrap.sh"


@dataclass(frozen=True)
class Expected:
    """What the page must show: per machine (by asset id) its uses and revenue, and the pool."""

    uses: dict[str, int]
    revenue: dict[str, int]
    pool: str
    pool_repaid: int


def expected_of(served: Served) -> Expected:
    """The day's numbers from the ledger files and the chain (not from the API)."""
    uses, revenue = {}, {}
    for name in MACHINES:
        with LedgerStore(served.keep_dir / f"{name}-ledger.sqlite") as store:
            totals = revenue_totals(list(store.entries()))
        asset_id = "0x" + asset_id_of(name).hex()
        uses[asset_id], revenue[asset_id] = totals.uses, totals.fee_total
    deployment = served.sources.deployment
    assert deployment.financing_factory is not None
    assert served.result.financing is not None
    pool = served.result.financing.pool
    pools = FinancingPoolClient(
        served.sources.connection,
        deployment.financing_factory,
        Account.from_key(served.sources.connection.dev_keys[0]),
    )
    assert pools.asset_pools(asset_id_of(POOL_MACHINE)) == (pool,)
    return Expected(uses, revenue, to_checksum(pool).lower(), pools.state(pool).repaid)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium at a 1280 x 900 viewport, with a fresh profile; always quit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(LOAD_TIMEOUT_S)
        driver.set_script_timeout(LOAD_TIMEOUT_S)
        metrics = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        yield driver
    finally:
        driver.quit()


def test_dashboard_shows_the_demo_day(served: Served, browser: WebDriver, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def text(testid: str) -> str:
        return browser.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]').text

    expected = expected_of(served)  # before the page polls: one chain reader at a time
    browser.get(served.url + "/")
    wait = WebDriverWait(browser, LOAD_TIMEOUT_S, poll_frequency=0.2)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="loaded"]'))
    errors = browser.find_element(By.CSS_SELECTOR, '[data-testid="errors"]')
    assert not errors.is_displayed(), f"the page shows errors: {errors.text}"

    for asset_id, uses in expected.uses.items():
        assert text(f"asset-uses-{asset_id}") == str(uses)
        assert text(f"asset-revenue-{asset_id}") == euro(expected.revenue[asset_id])
        assert text(f"ledger-verified-{asset_id}") == "verified"
    statuses = browser.find_elements(By.CSS_SELECTOR, '[data-testid^="settlement-status-"]')
    assert statuses, "no settlement round on the page"
    assert [s.text for s in statuses] == ["settled"] * len(statuses)
    assert text(f"pool-repaid-{expected.pool}") == euro(expected.pool_repaid)
    assert expected.pool_repaid > 0

    # the live rate needs two polls of /api/stats (every 2 s)
    wait.until(lambda d: text("payments-per-second") not in ("", "\u2013"))
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, f"browser console errors: {severe}"

    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000
    if os.environ.get("CISE_SAVE_SCREENSHOT") == "1":
        shutil.copyfile(shot, REPO / "docs" / "dashboard.png")

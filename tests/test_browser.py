"""The dashboard in a real browser: `streamlit run app.py` plus headless Debian Chromium via Playwright.

Screenshots of every clinician page go to test-artifacts/ (gitignored) for a person to look at.
"""
from __future__ import annotations

import os
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.app_server import CHROMIUM, launch_chromium, start_app, stop_app, wait_for_server
from tests.helpers_dashboard import TINY_MODEL_CLASS, png_bytes, synthetic_cell, write_cell_dataset

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
START_TIMEOUT_S = 90
WAIT_MS = 60_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is not installed (Debian: apt install chromium)")


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One fresh `streamlit run app.py` for this module on a free local port: the tiny model, a tmp data
    dir and review store, a small dataset root and development sign-in (typed names)."""
    work = tmp_path_factory.mktemp("browser")
    write_cell_dataset(work / "root" / "cells")
    secrets = work / "secrets.toml"
    secrets.write_text("[access]\nallow_unverified_names = true\n")
    env = {**os.environ, "BLOODCELL_MODEL": str(tiny_model_dir), "BLOODCELL_MODELS_DIR": str(tiny_model_dir.parent),
           "BLOODCELL_DATA_DIR": str(work / "data"), "BLOODCELL_DATA_ROOTS": str(work / "root"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("BLOODCELL_DB", None)
    env.pop("BLOODCELL_DB_URL", None)
    log = work / "streamlit.log"
    with log.open("w") as log_file:
        process, url = start_app(secrets, env, log_file, ROOT)
    try:
        wait_for_server(url, process, START_TIMEOUT_S, log)
        yield url
    finally:
        stop_app(process)


@pytest.fixture
def page(server: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            yield context.new_page()
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_for_run(page) -> None:
    """Until Streamlit has finished running the script (no 'Running...' status widget)."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=WAIT_MS)


def test_performance_page_in_a_real_browser(page, server):
    # The server's first request is a page URL: the page must still run inside app.py's navigation
    # (wide layout, sidebar model picker, page titles from app.py), not Streamlit's pages/ fallback.
    page.goto(f"{server}/performance", wait_until="domcontentloaded")
    page.get_by_role("button", name="Evaluate").click()
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Model", exact=True).wait_for(timeout=WAIT_MS)
    assert sidebar.get_by_role("link", name="Model performance").count() == 1
    page.get_by_text("IG predicted as monocyte").wait_for(timeout=WAIT_MS)
    page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
    wait_for_run(page)
    screenshot(page, "performance.png")
    page.get_by_role("tab", name="Misclassified images").click()
    page.get_by_text("predicted lymphocyte").first.wait_for(timeout=WAIT_MS)
    wait_for_run(page)
    screenshot(page, "performance-gallery.png")
    assert page.locator('[data-testid="stImage"]').count() == 3  # the misclassified monocytes


def test_classify_an_upload_in_a_real_browser(page, server, tmp_path):
    """Home, then Classify: upload a cell and an empty file, see prediction, Grad-CAM, accept it."""
    cell = tmp_path / "cell.png"
    cell.write_bytes(png_bytes(synthetic_cell(96)))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")

    page.goto(server, wait_until="domcontentloaded")
    page.get_by_text("Blood-cell review dashboard").first.wait_for(timeout=WAIT_MS)
    page.get_by_text("Validation metrics (from the model card)").wait_for(timeout=WAIT_MS)
    wait_for_run(page)
    screenshot(page, "home.png")

    page.goto(f"{server}/classify", wait_until="domcontentloaded")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(cell), str(empty)])
    page.get_by_text(f"Grad-CAM for {TINY_MODEL_CLASS}").wait_for(timeout=WAIT_MS)
    page.locator('[data-testid="stMetricValue"]', has_text=TINY_MODEL_CLASS).first.wait_for(timeout=WAIT_MS)
    page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
    page.get_by_text("empty.png: empty file (0 bytes)").wait_for(timeout=WAIT_MS)
    images = page.locator('[data-testid="stImage"] img')
    assert images.count() == 2  # the upload with its crop box, and the Grad-CAM overlay
    assert all(images.nth(i).evaluate("img => img.naturalWidth > 0") for i in range(2))

    page.get_by_label("Your name").fill("Dr Browser")
    page.get_by_role("button", name="Start reviewing").click()
    page.get_by_role("button", name=f"Accept: {TINY_MODEL_CLASS}").click()
    page.get_by_text("Reviewed: confirmed by unverified:Dr Browser").wait_for(timeout=WAIT_MS)
    page.set_viewport_size({"width": 1400, "height": 2400})  # Streamlit scrolls inside the page: grow it
    wait_for_run(page)
    screenshot(page, "classify.png")

    # The CSV is made when its button is clicked (a callable), and holds the decision just recorded.
    with page.expect_download(timeout=WAIT_MS) as download:
        page.get_by_role("button", name="Download predictions (CSV)").click()
    rows = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("file,sha256,predicted") and len(rows) == 2
    assert rows[1].startswith("cell.png,") and "unverified:Dr Browser" in rows[1]


def external_requests(urls: list[str], server: str) -> list[str]:
    """The requested URLs that leave the app's own origin (data: and blob: URLs never leave the browser)."""
    own = urllib.parse.urlsplit(server).netloc
    return [url for url in urls if urllib.parse.urlsplit(url).scheme not in ("data", "blob")
            and urllib.parse.urlsplit(url).netloc != own]


APP_PATHS = ("", "/classify", "/performance", "/robustness", "/adapt", "/duplicates", "/outliers", "/label_issues",
             "/review_log")


def test_the_app_requests_nothing_from_other_hosts(page, server, tmp_path):
    """Hospitals run the dashboard offline: every font, icon and script comes from the app itself.

    Streamlit bundles the Material Symbols font it draws ``:material/...:`` icons with, but a
    ``:material/...:`` *page icon* becomes a favicon link to fonts.gstatic.com; the app uses an emoji.
    Every page is opened, and on Classify an upload draws the prediction chart and Grad-CAM too.
    """
    cell = tmp_path / "cell.png"
    cell.write_bytes(png_bytes(synthetic_cell(96)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    for path in APP_PATHS:
        page.goto(f"{server}{path}", wait_until="domcontentloaded")
        page.locator('[data-testid="stSidebar"]').get_by_text("Model", exact=True).wait_for(timeout=WAIT_MS)
        if path == "/classify":
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(cell)])
            page.locator(".js-plotly-plot").first.wait_for(timeout=WAIT_MS)
        wait_for_run(page)
        page.wait_for_load_state("networkidle")
    icons = page.eval_on_selector_all("link[rel~='icon']", "links => links.map(link => link.href)")
    assert icons and external_requests(icons, server) == [], icons
    assert any("MaterialSymbols" in url for url in requested), "the icon font should load, from the app"
    assert requested and external_requests(requested, server) == []


def test_tables_offer_no_unguarded_csv_download(page, server):
    """client.disableDataExport: a table's own "Download as CSV" would write file names starting with
    "=" as live formulas; the pages' CSV downloads go through bloodcell_core.outputs.safe_cell instead."""
    page.goto(server, wait_until="domcontentloaded")
    table = page.locator('[data-testid="stDataFrame"]').first
    table.wait_for(timeout=WAIT_MS)
    wait_for_run(page)
    table.hover()
    toolbar = page.locator('[data-testid="stElementToolbar"]').first
    toolbar.wait_for(timeout=WAIT_MS)
    labels = toolbar.locator("button").evaluate_all("buttons => buttons.map(b => b.getAttribute('aria-label'))")
    assert labels and "Download as CSV" not in labels, labels


def test_gallery_review_survives_a_reload_in_a_real_browser(page, server, tmp_path):
    """20 cells: confirm their group, move one with its number key, reload: batch and sign-in are still there."""
    files = []
    for seed in range(20):
        path = tmp_path / f"cell-{seed:02d}.png"
        path.write_bytes(png_bytes(synthetic_cell(72, seed=seed)))
        files.append(str(path))
    page.set_viewport_size({"width": 1400, "height": 2000})
    page.goto(f"{server}/classify", wait_until="domcontentloaded")
    page.get_by_label("Your name").fill("Dr Gallery")
    page.get_by_role("button", name="Start reviewing").click()
    page.get_by_text("Signed in as Dr Gallery").wait_for(timeout=WAIT_MS)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(files)
    page.get_by_text(f"{TINY_MODEL_CLASS}: 20 (100%)").wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Confirm all 20").click()
    page.get_by_text(f"{TINY_MODEL_CLASS}: 20 (100%) · confirmed").wait_for(timeout=WAIT_MS)
    wait_for_run(page)

    grid = page.locator('[data-testid="stDataFrame"]').nth(1)  # the first is the differential count
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 50, box["y"] + 36 + 50)  # the first thumbnail (below the header row)
    page.get_by_text("1 selected: cell-00.png").wait_for(timeout=WAIT_MS)
    page.get_by_text(f"Grad-CAM for {TINY_MODEL_CLASS}").wait_for(timeout=WAIT_MS)  # the opened cell's card
    wait_for_run(page)
    page.keyboard.press("6")  # the sixth class: monocyte
    page.get_by_text("monocyte: 1 (5%) · confirmed").wait_for(timeout=WAIT_MS)
    page.get_by_text(f"{TINY_MODEL_CLASS}: 19 (95%) · confirmed").wait_for(timeout=WAIT_MS)
    wait_for_run(page)
    screenshot(page, "classify-gallery.png")

    page.reload(wait_until="domcontentloaded")
    page.get_by_text("Signed in as Dr Gallery").wait_for(timeout=WAIT_MS)
    page.get_by_text("Showing the batch of 20 image(s) kept from before the page was reloaded").wait_for(
        timeout=WAIT_MS)
    page.get_by_text("monocyte: 1 (5%) · confirmed").wait_for(timeout=WAIT_MS)
    wait_for_run(page)
    screenshot(page, "classify-gallery-reloaded.png")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Start reviewing").wait_for(timeout=WAIT_MS)
    wait_for_run(page)
    page.reload(wait_until="domcontentloaded")
    page.get_by_role("button", name="Start reviewing").wait_for(timeout=WAIT_MS)
    wait_for_run(page)
    assert page.get_by_text("kept from before").count() == 0  # signing out dropped the batch too

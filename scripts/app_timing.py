"""App responsiveness as a user sees it: ``streamlit run app.py`` driven by headless Chromium.

    python scripts/app_timing.py --model DIR --scratch DIR --out app.json IMAGE IMAGE [...] [--batch IMAGE ...]

``python -m bloodcell_core bench`` runs this script as a subprocess (``bloodcell_core/bench/app_subprocess.py``)
and puts the JSON it writes in the report's ``app`` section.  It lives in ``scripts/``, not in the core,
because it knows the app: it starts ``app.py`` and finds the Classify page through the page table
(``dashboard/navigation.py`` ``PAGES``), and the core imports nothing of the app.  It is a measurement,
not a pass/fail test, so it is not under ``tests/``.

Measured, in order, in one browser session:

1. first render: from starting the Streamlit process to the home page's title being shown
   with no loading placeholder (app skeleton or a lazily loaded element's stSkeleton) on
   show; the browser is launched beforehand, so its own start-up isn't counted.  Also the
   time until the home page's script run has finished (everything drawn, the model loaded);
2. first prediction: on the Classify page, from handing the uploader a file to the script run
   finishing with two new images (the upload with its crop box, and the Grad-CAM overlay)
   shown and nothing loading;
3. later predictions: the same for further, different files (the uploader takes several
   files, so each adds one cell to the batch, which is then shown as the gallery);
4. the cell gallery: after a reload, from handing the uploader a fresh batch of 60 (then 200)
   images to the script run finishing with every image counted and the gallery's tables drawn;
5. one reclassification: with a cell of the 200-image gallery selected, from pressing the first
   class's number key to the run finishing with the "Reviewed" count one higher;
6. peak memory: VmHWM summed over the app's process tree, read after all of that.

The app runs with development sign-in (typed names) so that a reclassification can be recorded;
the name is typed on Classify before the first upload, outside the timed steps.

Selectors are Streamlit's stable test ids (``stApp``'s ``data-test-script-state``, ``stMain``,
``stImage``, ``stSkeleton``, ``stSidebarNav``, ``stMetricValue``, ``stDataFrame``), the uploader's
``input[type=file]`` and the ``st-key-<key>`` class of keyed widgets, so the timing doesn't depend
on the pages' wording (the batch metrics are the first four on Classify: analysed, needs review,
reviewed, not readable).  Anything missing (app, Chromium, Playwright) skips the app part with the
reason; anything failing mid-way is reported with what was measured so far.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bloodcell_core.progress import ProgressFn  # noqa: E402
from dashboard.navigation import PAGES, PageEntry  # noqa: E402
from scripts.app_server import (APP_SCRIPT, CHROMIUM, PROJECT_ROOT, chromium_available,  # noqa: E402
                                launch_chromium, start_app, stop_app, wait_for_server)

CLASSIFY_PAGE: PageEntry = next(page for page in PAGES if page.filename == "classify.py")
SERVER_START_TIMEOUT_S = 90.0
STEP_TIMEOUT_S = 120.0
LATER_PREDICTIONS = 2
GALLERY_BATCHES = (60, 200)
REVIEWED_METRIC = 2  # position of "Reviewed" among Classify's batch metrics
RESULT_IMAGES = 2  # new images one classified upload adds: the upload with its crop box, the Grad-CAM

MAIN = '[data-testid="stMain"]'
FILE_INPUT = f'{MAIN} input[type="file"]'
MAIN_IMAGES = f'{MAIN} [data-testid="stImage"] img'
NAV_LINK = '[data-testid="stSidebarNav"] a'
# Page-state tests shared by the conditions below: the script run has finished; no loading
# placeholder (the app skeleton, or a lazily loaded element's stSkeleton) is on show; the
# page's title (h1) is drawn.
_STATE_JS = """
  const idle = () => document.querySelector('[data-testid="stApp"]')
    ?.getAttribute('data-test-script-state') === 'notRunning';
  const noSkeleton = () => !document.querySelector(
    '[data-testid="stAppSkeleton"], [data-testid="stMain"] [data-testid="stSkeleton"]');
  const titleShown = () => [...document.querySelectorAll('[data-testid="stMain"] h1')]
    .some(h => h.getBoundingClientRect().height > 0);
"""
HOME_RENDERED_JS = f"() => {{ {_STATE_JS} return titleShown() && noSkeleton(); }}"
HOME_COMPLETE_JS = f"() => {{ {_STATE_JS} return titleShown() && noSkeleton() && idle(); }}"
# The run has finished, nothing is loading, and at least `need` images not in `before` are shown.
RESULT_SHOWN_JS = f"""([before, need]) => {{ {_STATE_JS}
  if (!idle() || !noSkeleton()) return false;
  const shown = [...document.querySelectorAll('{MAIN} [data-testid="stImage"] img')]
    .filter(img => img.complete && img.naturalWidth > 0 && !before.includes(img.src));
  return shown.length >= need;
}}"""


# The run has finished, nothing is loading, the first batch metric counts `n` images and the
# gallery's tables (after the differential count's) are drawn.
GALLERY_SHOWN_JS = f"""(n) => {{ {_STATE_JS}
  if (!idle() || !noSkeleton()) return false;
  const metric = document.querySelector('{MAIN} [data-testid="stMetricValue"]');
  const tables = document.querySelectorAll('{MAIN} [data-testid="stDataFrame"] canvas');
  return metric !== null && metric.textContent.trim() === String(n) && tables.length >= 2;
}}"""
SIGN_IN_FORM = '[data-testid="stSidebar"] [data-testid="stForm"]'
# The run has finished and the sidebar's sign-in form is gone (replaced by the signed-in name).
SIGNED_IN_JS = f"() => {{ {_STATE_JS} return idle() && !document.querySelector('{SIGN_IN_FORM}'); }}"
# The run has finished and the metric at `position` reads `value`.
METRIC_IS_JS = f"""([position, value]) => {{ {_STATE_JS}
  const metrics = document.querySelectorAll('{MAIN} [data-testid="stMetricValue"]');
  return idle() && metrics.length > position && metrics[position].textContent.trim() === String(value);
}}"""


def app_unavailable_reason(project_root: Path = PROJECT_ROOT, chromium: Path = CHROMIUM) -> str | None:
    """Why the app can't be timed here, or None when it can."""
    if not (project_root / APP_SCRIPT).is_file():
        return f"{APP_SCRIPT} not found in {project_root}"
    if not (project_root / CLASSIFY_PAGE.path).is_file():
        return f"{CLASSIFY_PAGE.path} not found (the {CLASSIFY_PAGE.title} page is needed for the prediction timings)"
    if not chromium_available(chromium):
        return f"Chromium not found at {chromium}"
    for module in ("playwright.sync_api", "streamlit"):
        try:
            __import__(module)
        except ImportError:
            return f"Python package {module.split('.')[0]} not installed"
    return None


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its descendants, from the parent ids in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, queue = [], [root_pid]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue += children.get(pid, [])
    return tree


def peak_rss_mib(root_pid: int) -> float | None:
    """Sum of VmHWM (peak resident set) over the process tree, in MiB."""
    total_kib, found = 0, False
    for pid in process_tree(root_pid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
                    found = True
        except OSError:
            continue
    return total_kib / 1024 if found else None


def _main_image_sources(page: Any) -> list[str]:
    return page.eval_on_selector_all(MAIN_IMAGES, "imgs => imgs.map(img => img.src)")


def _timed_upload(page: Any, image_file: Path, count: int) -> float:
    """Seconds from handing the uploader one more file (``count`` in all) to its result shown: the
    first file's card (upload with crop box, Grad-CAM), a later one counted in the redrawn gallery."""
    before = _main_image_sources(page)
    start = time.perf_counter()
    page.set_input_files(FILE_INPUT, str(image_file))
    if count == 1:
        page.wait_for_function(RESULT_SHOWN_JS, arg=[before, RESULT_IMAGES], timeout=STEP_TIMEOUT_S * 1000,
                               polling=20)
    else:
        page.wait_for_function(GALLERY_SHOWN_JS, arg=count, timeout=STEP_TIMEOUT_S * 1000, polling=20)
    return time.perf_counter() - start


def _metric(page: Any, position: int) -> str:
    return page.locator(f'{MAIN} [data-testid="stMetricValue"]').nth(position).inner_text().strip()


def _timed_gallery(page: Any, image_files: list[Path]) -> float:
    """After a reload (a fresh uploader), seconds from handing it the batch to the whole gallery drawn."""
    page.reload()
    page.locator(FILE_INPUT).first.wait_for(state="attached", timeout=STEP_TIMEOUT_S * 1000)
    page.wait_for_function(f"() => {{ {_STATE_JS} return idle(); }}", timeout=STEP_TIMEOUT_S * 1000)
    start = time.perf_counter()
    page.set_input_files(FILE_INPUT, [str(path) for path in image_files])
    page.wait_for_function(GALLERY_SHOWN_JS, arg=len(image_files), timeout=STEP_TIMEOUT_S * 1000, polling=20)
    return time.perf_counter() - start


def _timed_reclassification(page: Any) -> float:
    """Select the gallery's first cell, then seconds from its class key to the Reviewed count updated."""
    grid = page.locator(f'{MAIN} [data-testid="stDataFrame"]').nth(1)  # the first group (0: the count)
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 40, box["y"] + 80)  # below the header row: the first thumbnail
    page.locator('[class*="st-key-classify_move_"]').first.wait_for(timeout=STEP_TIMEOUT_S * 1000)
    page.wait_for_function(f"() => {{ {_STATE_JS} return idle(); }}", timeout=STEP_TIMEOUT_S * 1000)
    reviewed = int(_metric(page, REVIEWED_METRIC))
    start = time.perf_counter()
    page.keyboard.press("1")
    page.wait_for_function(METRIC_IS_JS, arg=[REVIEWED_METRIC, reviewed + 1], timeout=STEP_TIMEOUT_S * 1000,
                           polling=10)
    return time.perf_counter() - start


def _sign_in(page: Any) -> None:
    """Development sign-in: type a name in the sidebar's form and submit it (Enter), then wait for
    the form to be gone and the run finished.  Waiting for "finished" alone can return before the
    sign-in's run has started; a file handed to the uploader then was, most likely, lost in that run
    (3 of 29 timings waited for a first prediction that never came, the uploader shown empty)."""
    name = page.locator(SIGN_IN_FORM + ' input[type="text"]').first
    name.fill("bench")
    name.press("Enter")
    page.wait_for_function(SIGNED_IN_JS, timeout=STEP_TIMEOUT_S * 1000, polling=20)


def _open_classify(page: Any, url: str) -> None:
    link = page.locator(NAV_LINK, has_text=CLASSIFY_PAGE.title)
    if link.count():
        link.first.click()
    else:
        page.goto(f"{url}/{CLASSIFY_PAGE.url_path}")
    page.locator(FILE_INPUT).first.wait_for(state="attached", timeout=STEP_TIMEOUT_S * 1000)


def _drive(browser: Any, url: str, process: subprocess.Popen, started: float, image_files: list[Path],
           batch_files: list[Path], result: dict[str, Any], progress: ProgressFn | None,
           screenshot_dir: Path | None) -> None:
    """Fill ``result`` step by step, so a failure keeps what was measured before it."""
    total = 3 + LATER_PREDICTIONS + len(GALLERY_BATCHES) + 1

    def step(done: int) -> None:
        if screenshot_dir is not None:  # after the timed part of each step, to check what was timed
            images = page.locator(MAIN_IMAGES)
            if images.count():
                images.last.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot_dir / f"app-step-{done}.png"))
        if progress is not None:
            progress(done, total, "App timing")

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    wait_for_server(url, process, SERVER_START_TIMEOUT_S)
    result["server_ready_s"] = time.perf_counter() - started  # Streamlit answers its health check
    page.goto(url)
    page.wait_for_function(HOME_RENDERED_JS, timeout=STEP_TIMEOUT_S * 1000, polling=20)
    result["first_render_s"] = time.perf_counter() - started
    page.wait_for_function(HOME_COMPLETE_JS, timeout=STEP_TIMEOUT_S * 1000, polling=20)
    result["home_complete_s"] = time.perf_counter() - started  # whole page drawn, model loaded
    step(1)
    start = time.perf_counter()
    _open_classify(page, url)
    result["navigation_s"] = time.perf_counter() - start
    _sign_in(page)
    step(2)
    result["first_prediction_s"] = _timed_upload(page, image_files[0], 1)
    step(3)
    later = []
    for index, image_file in enumerate(image_files[1:1 + LATER_PREDICTIONS]):
        later.append(_timed_upload(page, image_file, index + 2))
        result["later_predictions_s"] = later
        result["later_predictions_max_s"] = max(later)
        step(4 + index)
    _drive_gallery(page, batch_files, result, step, 4 + LATER_PREDICTIONS)
    result["peak_rss_mib"] = peak_rss_mib(process.pid)


def _drive_gallery(page: Any, batch_files: list[Path], result: dict[str, Any], step: Any, done: int) -> None:
    """The gallery timings: each batch size there are enough files for, then one reclassification."""
    for size in GALLERY_BATCHES:
        if len(batch_files) >= size:
            result[f"gallery_{size}_s"] = _timed_gallery(page, batch_files[:size])
            step(done)
            done += 1
    if result.get("gallery_60_s") is not None:
        result["reclassify_s"] = _timed_reclassification(page)
        step(done)


def _empty_result() -> dict[str, Any]:
    return {"status": "measured", "server_ready_s": None, "first_render_s": None, "home_complete_s": None,
            "navigation_s": None, "first_prediction_s": None, "later_predictions_s": [],
            "later_predictions_max_s": None, "gallery_60_s": None, "gallery_200_s": None, "reclassify_s": None,
            "peak_rss_mib": None}


def time_app(model_dir: Path, image_files: list[Path], scratch: Path, progress: ProgressFn | None = None,
             project_root: Path = PROJECT_ROOT, chromium: Path = CHROMIUM,
             screenshot_dir: Path | None = None, batch_files: list[Path] | None = None) -> dict[str, Any]:
    """Start the app, time it in Chromium, stop it; returns the ``app`` section of the report.

    ``image_files``: the single uploads; ``batch_files``: at least 60 (better 200) other images for
    the gallery timings (fewer: those are not measured).  ``screenshot_dir``: save a screenshot
    after each timed step (to check what was timed).
    """
    reason = app_unavailable_reason(project_root, chromium)
    if reason is None and len(image_files) < 2:
        reason = "need at least two image files to upload"
    if reason is not None:
        return {"status": "skipped", "reason": reason}
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    for folder in (scratch, screenshot_dir):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    secrets_file = scratch / "secrets.toml"
    secrets_file.write_text("# isolated from any local sign-in set-up; typed names, to record a reclassification\n"
                            "[access]\nallow_unverified_names = true\n")
    env = {**os.environ, "BLOODCELL_MODEL": str(model_dir), "BLOODCELL_DATA_DIR": str(scratch / "data"),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = _empty_result()
    log_path = scratch / "streamlit.log"
    with sync_playwright() as playwright, log_path.open("wb") as log:
        try:
            browser = launch_chromium(playwright, chromium)
        except PlaywrightError as exc:
            return {"status": "skipped", "reason": f"Chromium did not start: {_first_line(exc)}"}
        result["browser"] = f"Chromium {browser.version} (headless, Playwright)"
        started = time.perf_counter()
        process, url = start_app(secrets_file, env, log, project_root)
        try:
            _drive(browser, url, process, started, image_files, batch_files or [], result, progress, screenshot_dir)
        except (PlaywrightError, RuntimeError) as exc:
            result.update(status="failed", reason=_failure(exc, log_path),
                          page_at_failure=_keep_page(browser, screenshot_dir or scratch))
        finally:
            browser.close()
            stop_app(process)
    return result


def _keep_page(browser: Any, folder: Path) -> str | None:
    """Save what the browser showed when a step failed (screenshot and visible text) in ``folder``:
    the screenshot folder when there is one (``bench --screenshots``; bench's scratch is temporary)."""
    for context in browser.contexts:
        for page in context.pages:
            try:
                page.screenshot(path=str(folder / "app-failure.png"), full_page=True)
                (folder / "app-failure.txt").write_text(page.inner_text("body"))
                return str(folder / "app-failure.png")
            except Exception:  # noqa: BLE001 (a page that can't be saved must not hide the first error)
                return None
    return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _failure(exc: Exception, log_path: Path) -> str:
    """The error's first line plus the app log's last line (often the real cause)."""
    log_lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    tail = f"; app log ends: {log_lines[-1][:200]}" if log_lines else ""
    return f"{type(exc).__name__}: {_first_line(exc)}{tail}"


def _print_progress(done: int, total: int, label: str = "") -> None:
    """Progress for the parent process (``bench``): one ``progress <done> <total>`` line per step."""
    print(f"progress {done} {total}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the dashboard in headless Chromium; writes JSON.")
    parser.add_argument("images", nargs="+", type=Path, help="single uploads (at least two)")
    parser.add_argument("--batch", nargs="*", type=Path, default=[], help="60 (better 200) images for the gallery")
    parser.add_argument("--model", type=Path, required=True, help="the model folder the app loads")
    parser.add_argument("--scratch", type=Path, required=True, help="a folder for the app's data and log")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON result goes")
    parser.add_argument("--screenshots", type=Path, help="save a screenshot after each timed step")
    args = parser.parse_args(argv)
    result = time_app(args.model, args.images, args.scratch, _print_progress, screenshot_dir=args.screenshots,
                      batch_files=args.batch)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

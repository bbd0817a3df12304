"""The Dagster UI as a person uses it: `selftaught ui` on 127.0.0.1, opened in headless
Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser download).

`make test` runs it (`make test-ui` alone), installing chromium and playwright first; a plain
`pytest` skips it where either is missing. SELFTAUGHT_SCREENSHOTS=<dir> keeps the screenshots (the
README's come from here).
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test-ui)")
pytestmark = [
    pytest.mark.ui,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no chromium (make test-ui installs it)"),
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """Two rounds of the tiny experiment with its control, then `selftaught ui` serving them."""
    from tests.helpers import start_ui, tiny_config_in

    folder = tmp_path_factory.mktemp("ui")
    config = tiny_config_in(folder, evaluation__control="warm_start")
    env = {**os.environ, "DAGSTER_HOME": str(folder / "home"), "PYTHONPATH": str(ROOT)}
    run = _cli("run", "--config", str(config), "--rounds", "2", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    proc, url = start_ui(config, env)
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # dagster dev and its code server, by process group
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.poll() is not None


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        yield pg
        browser.close()


def _open(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)


def _shot(page, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SELFTAUGHT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    return path


def test_the_first_visit_opens_on_the_experiment_without_a_modal(ui, page, tmp_path):
    """The Dagster home selftaught makes turns the first-visit (nux) dialog off."""
    _open(page, f"{ui}/assets/tiny/evaluation")
    page.get_by_text("accuracy_d1", exact=True).first.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)  # the dialog, where it is on, opens after the page
    assert page.get_by_role("button", name="Skip").count() == 0  # the community dialog's way out


def test_the_control_sits_beside_the_round_with_its_gain(ui, page, tmp_path):
    _open(page, f"{ui}/assets/tiny/control_evaluation?view=partitions&partition=r002")
    for key in ("control_accuracy_d1", "vs_control_d1", "base_accuracy_d1", "control_hash"):
        page.get_by_text(key, exact=True).first.wait_for(timeout=60_000)
    _shot(page, "ui-control-evaluation.png", tmp_path)


def test_asset_graph_shows_every_stage(ui, page, tmp_path):
    _open(page, f"{ui}/locations/pipelines.definitions/asset-groups/round/lineage")
    for name in (
        "prompts",
        "samples",
        "verdicts",
        "training_set",
        "policy",
        "evaluation",
        "round_diff",
        "control_policy",
    ):
        page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
    _shot(page, "ui-round-graph.png", tmp_path)


def test_round_diff_shows_what_the_round_changed(ui, page, tmp_path):
    _open(page, f"{ui}/assets/tiny/round_diff?view=partitions&partition=r002")
    page.get_by_text("newly_solved", exact=True).first.wait_for(timeout=60_000)
    page.get_by_text("kept_overlap", exact=True).first.wait_for(timeout=60_000)
    _shot(page, "ui-round-diff.png", tmp_path)


def test_the_verdict_audit_check_is_listed_with_its_rows(ui, page, tmp_path):
    _open(page, f"{ui}/assets/tiny/verdicts?view=checks")
    page.get_by_text("verdict_audit", exact=True).first.wait_for(timeout=60_000)
    _shot(page, "ui-verdict-audit.png", tmp_path)


def test_the_compute_ledger_is_plotted(ui, page, tmp_path):
    _open(page, f"{ui}/assets/tiny/ledger")
    page.get_by_text("plot_path", exact=True).first.wait_for(timeout=60_000)
    _shot(page, "ui-ledger.png", tmp_path)


def test_round_partitions_are_listed(ui, page, tmp_path):
    _open(page, f"{ui}/assets/tiny/evaluation?view=partitions")
    page.get_by_text("r002", exact=True).first.wait_for(timeout=60_000)
    assert page.get_by_text("r001", exact=True).count() >= 1
    _shot(page, "ui-evaluation-partitions.png", tmp_path)


def test_summary_plot_and_automation_are_shown(ui, page, tmp_path):
    _open(page, f"{ui}/assets/tiny/summary")
    page.get_by_text("plot", exact=True).first.wait_for(timeout=60_000)
    _shot(page, "ui-summary.png", tmp_path)
    page.get_by_text("[Show Markdown]").first.click()
    plot = page.locator("img[src^='data:image/png']").first
    plot.wait_for(timeout=30_000)
    assert plot.evaluate("img => img.naturalWidth") > 500  # the PNG decoded in the browser
    page.wait_for_timeout(1500)  # the dialog fades in
    _shot(page, "ui-summary-plot.png", tmp_path)
    page.keyboard.press("Escape")
    _open(page, f"{ui}/automation")
    page.get_by_text("tiny_nightly").first.wait_for(timeout=60_000)
    assert page.get_by_text("tiny_auto_continue").count() >= 1
    _shot(page, "ui-automation.png", tmp_path)

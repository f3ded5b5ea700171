"""The GUI in a real browser (Debian's Chromium, headless) against the emulator.

One scenario walks every screen: sign-in with a device code, destination, what to back up
(with the folder picker), the run, pause and resume, stop, resume from the finished screen,
the finished summary, open-folder and verify; then the existing backup is offered for resume.
Screenshots of each screen, wide and narrow, go to $TEST_ARTIFACTS (default ./test-artifacts)/gui.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator_fixtures import EmulatorFactory
from onedrive_backup import auth
from onedrive_backup.config import load_settings
from onedrive_backup.emulator import DriveSpec
from onedrive_backup.gui.server import GuiServer, ServerThread
from onedrive_backup.selection import Selection
from oracle import assert_backup_matches, live_files

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 400, "height": 800}
REPO = Path(__file__).resolve().parent.parent
TIMEOUT_MS = 30_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt install chromium)"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect


def artifacts_dir() -> Path:
    base = Path(os.environ.get("TEST_ARTIFACTS") or REPO / "test-artifacts")
    out = base / "gui"
    out.mkdir(parents=True, exist_ok=True)
    return out


class Shots:
    """Screenshots of each screen at 1280x800 and 400 px wide; optionally copied to docs/."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.out = artifacts_dir()
        self.docs = REPO / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else None

    def take(self, name: str, scroll_to: str | None = None) -> None:
        for label, size in (("wide", WIDE), ("narrow", NARROW)):
            self.page.set_viewport_size(size)
            if scroll_to:
                self.page.locator(scroll_to).scroll_into_view_if_needed()
            else:
                self.page.evaluate("window.scrollTo(0, 0)")
            self.page.wait_for_timeout(80)  # let the layout settle
            path = self.out / f"{name}-{label}.png"
            self.page.screenshot(path=str(path), full_page=label == "narrow")
            if self.docs is not None:
                self.docs.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, self.docs / path.name)
        self.page.set_viewport_size(WIDE)


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_backup_through_the_browser(
    emulator_factory: EmulatorFactory,
    browser: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    spec = DriveSpec(files=90, seed=7, size_range=(1_000, 40_000), zero_byte_files=1)
    emu = emulator_factory(spec)
    emu.faults.auto_approve = False  # approve by hand once the code is on screen
    env = {k: str(v) for k, v in emu.env().items()}
    env["ONEDRIVE_BACKUP_CONFIG_DIR"] = str(tmp_path / "config")
    monkeypatch.setenv(auth.PLAIN_CACHE_ENV, "1")
    settings = load_settings({}, env)
    # A short destination path, so the screenshots read like a real one.
    dest = Path(tempfile.mkdtemp(prefix="Backup-disk-"))
    request.addfinalizer(lambda: shutil.rmtree(dest, ignore_errors=True))
    opened: list[Path] = []

    with ServerThread(GuiServer(settings, opener=opened.append)) as gui:
        context = browser.new_context(viewport=WIDE)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(TIMEOUT_MS)
        shots = Shots(page)
        try:
            _walk(page, shots, emu, gui, dest, opened)
        finally:
            context.close()
        assert errors == [], errors


def _walk(
    page: Any, shots: Shots, emu: Any, gui: ServerThread, dest: Path, opened: list[Path]
) -> None:
    # Sign-in: the page shows the device code and moves on by itself once it is approved.
    page.goto(gui.server.url)
    assert page.url.endswith("/") and "key=" not in page.url  # the key left the address bar
    start = page.get_by_role("button", name="Sign in with Microsoft")
    expect(start).to_be_visible()
    shots.take("1-sign-in")
    for _ in range(8):  # keyboard only: Tab reaches the button, Enter presses it
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "signin-start":
            break
    assert page.evaluate("document.activeElement.id") == "signin-start"
    page.keyboard.press("Enter")
    code = page.get_by_label("Sign-in code")
    expect(code).to_have_text(re.compile(r"\w{6,}"))
    expect(page.get_by_role("link", name=re.compile("devicelogin"))).to_be_visible()
    shots.take("2-device-code")
    assert emu.approve_device_code(code.inner_text()) == 1

    # Destination: validation, free space, backups already there (none yet).
    path_box = page.get_by_label("Destination folder")
    expect(path_box).to_be_visible()
    expect(page.locator("#account-name")).to_contain_text(DriveSpec().user_email)
    expect(page.locator("#account-quota")).to_contain_text("used")
    path_box.fill(str(dest / "missing"))
    path_box.press("Enter")
    expect(page.locator("#dest-result")).to_contain_text("does not exist")
    expect(page.get_by_role("button", name="Continue")).to_be_disabled()
    path_box.fill(str(dest))
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#dest-result")).to_contain_text("free of")
    expect(page.locator("#dest-result")).to_contain_text("No backups here yet")
    shots.take("3-destination")
    page.get_by_role("button", name="Continue").click()

    # What to back up: pictures only; the folder picker browses the drive tree.
    expect(page.get_by_role("heading", name="What should be backed up?")).to_be_visible()
    page.get_by_label("Pictures").check()
    expect(page.get_by_label("All files")).not_to_be_checked()
    page.get_by_role("button", name="Choose folders…").click()
    first_folder = page.locator("#picker-list button.open").first
    expect(first_folder).to_be_visible()
    folder_name = first_folder.inner_text()
    page.get_by_role("button", name=f"Back up the folder {folder_name}").click()
    expect(page.locator("#folders-chosen")).to_contain_text(f"/{folder_name}")
    shots.take("4-what-to-back-up", scroll_to="#screen-what .categories")
    first_folder.click()  # into the folder, then back up to the root by the breadcrumb
    expect(page.locator("#picker-crumbs")).to_contain_text(f"OneDrive›{folder_name}")
    page.locator("#picker-crumbs").get_by_role("button", name="OneDrive").click()
    expect(page.locator("#picker-crumbs button")).to_have_count(1)
    page.get_by_role("button", name=f"Remove /{folder_name}").click()  # keep: all folders
    expect(page.locator("#folders-chosen li")).to_have_count(0)
    page.get_by_role("button", name="Done").click()
    page.get_by_label("Never files matching").fill("*.nothing-matches")

    # The run: slow the emulator so there is time to pause and stop mid-download.
    emu.faults.latency = 0.25
    page.get_by_role("button", name="Start backup").click()
    expect(page.get_by_role("heading", name="Backing up")).to_be_visible()
    expect(page.locator("#files-text")).to_have_text(re.compile(r"^[1-9][\d,]* of [\d,]+$"))
    expect(page.locator("#log")).to_contain_text("Phase 1: Scanning OneDrive")
    expect(page.locator("#log")).to_contain_text("Phase 3: Downloading")
    shots.take("5-run")

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("heading", name="Paused")).to_be_visible()
    expect(page.locator("#run-phase")).to_contain_text("Everything downloaded so far is saved")
    shots.take("6-paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("heading", name="Backing up")).to_be_visible()
    expect(page.locator("#log")).to_contain_text("Resuming OneDrive_Backup_")
    page.get_by_role("button", name="Stop").click()

    # Stopped: resumable; part of the files are on disk.
    expect(page.get_by_role("heading", name="Backup stopped")).to_be_visible()
    backup_dir = Path(page.locator("#done-path").inner_text())
    assert backup_dir.parent == dest and backup_dir.name.startswith("OneDrive_Backup_")
    selection = Selection.build(["photos"], exclude=["*.nothing-matches"])
    wanted = [f for f in emu.drive.iter_files() if not f.is_folder and selection.matches(f.path)]
    partial = live_files(backup_dir)
    assert 0 < len(partial) < len(wanted)
    shots.take("7-stopped")

    emu.faults.latency = 0.0
    page.get_by_role("button", name="Resume this backup").click()
    expect(page.get_by_role("heading", name="Backup finished")).to_be_visible()
    expect(page.locator("#done-verdict")).to_contain_text("Every selected file is backed up")
    expect(page.locator("#done-summary")).to_contain_text(f"{len(wanted)} of {len(wanted)}")
    assert_backup_matches(emu, backup_dir, selected=lambda f: selection.matches(f.path))

    page.get_by_role("button", name="Open the backup folder").click()
    page.get_by_role("button", name="Verify files").click()
    expect(page.locator("#verify-result")).to_contain_text(f"All {len(wanted)} files match")
    assert opened == [backup_dir]
    shots.take("8-finished")

    # Back to the start: the destination now lists the backup as complete, offered for update.
    page.get_by_role("button", name="Back to the start").click()
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#dest-result")).to_contain_text("Complete")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Resume a backup or start a new one?")).to_be_visible()
    expect(page.get_by_label(re.compile(f"Update {backup_dir.name}"))).to_be_visible()
    shots.take("9-resume-or-new")

    # Nothing secret ever reached the page.
    status = page.evaluate("fetch('/api/status').then(r => r.text())")
    html = page.content()
    for text in (status, html):
        assert "eyJ" not in text and "access_token" not in text and "tempauth" not in text
        assert gui.server.guard.secret not in text

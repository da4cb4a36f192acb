"""End to end in headless Chromium (Debian's `chromium` driven by Playwright for Python):
generate, see the text stream in, rate, then see that rating in the dashboard's stats.
Screenshots of both pages go to screenshots/ (git-ignored) for a human to look at."""

from __future__ import annotations

import asyncio
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from web_helpers import ADMIN_TOKEN, TINY, make_settings, web_config

from admin.fake import run_record, scripted_admin, version_record
from admin.results import CurationReport
from bot.app import App
from bot.chat import Origin
from bot.platforms.base import RunOptions
from bot.platforms.web import WebPlatform, create
from model.backends.fake import ScriptedBackend
from storage import CuratedSampleRecord, Database, ModelVersionRepository, RunStatus, upgrade
from storage.models import TrainingRun

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
XSS = "<img src=x onerror=alert(1)>"
WAIT_MS = 30_000
NOW = datetime.now(UTC)

pytestmark = pytest.mark.slow


def scripted_dashboard() -> Any:
    """Admin services for the dashboard test: curated texts are listed newest first, and a
    retrain starts run #1, which stays at 40%."""
    samples: list[CuratedSampleRecord] = []
    runs: list[Any] = []

    def add(actor: str, texts: list[str]) -> CurationReport:
        for text in texts:
            samples.insert(
                0, CuratedSampleRecord(len(samples) + 1, text, "admin", actor, NOW, True)
            )
        return CurationReport(len(texts))

    def start(actor: str, *options: Any) -> Any:
        runs.append(run_record(1, RunStatus.RUNNING, actor, progress=0.4))
        return runs[-1]

    return scripted_admin(
        {
            "registry.versions": [version_record("bootstrap-1", "active")],
            "curation.add": add,
            "curation.recent": lambda limit: samples[:limit],
            "training.start": start,
            "training.status": lambda: runs[-1] if runs else None,
        }
    )


class ServerThread(threading.Thread):
    """The real web platform over a real App, on its own event loop in a thread: with the
    real admin services, or (`with_admin`) scripted ones, whose training runs need no model;
    `review`: the real services over a scripted backend serving two registered versions."""

    def __init__(
        self, tmp_path: Path, model_dir: Path, with_admin: bool = False, review: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.with_admin, self.review = with_admin, review
        self.app: App | None = None
        self.settings = make_settings(tmp_path, model_dir)
        self.web_config = web_config(tmp_path)
        self.ready = threading.Event()
        self.url = ""
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the test through `error`
            self.error = error
            self.ready.set()

    async def _serve(self) -> None:
        admin = scripted_dashboard() if self.with_admin else None  # None: the real services
        if self.review:
            app = self.app = await App.open(self.settings, backend=two_versions(self.settings))
        else:
            app = self.app = await App.open(self.settings, bootstrap=TINY, admin=admin)
        options = RunOptions(host="127.0.0.1", port=0)
        platform: WebPlatform = create(app, options, self.web_config)
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        try:
            self.url = await platform.start()
            self.ready.set()
            await self._stopping.wait()
        finally:
            if platform.runner is not None:
                await platform.runner.cleanup()
            await app.close()

    def shutdown(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=30)


def two_versions(settings: Any) -> ScriptedBackend:
    """Versions v1 (serving) and v2 (an adapter of v1) registered; each writes its own
    sentence."""
    db = Database(settings.storage.url)
    upgrade(db.engine)
    versions = ModelVersionRepository(db)
    versions.add("v1", "/models/v1", "bootstrap")
    versions.add("v2", "/models/v2", "bootstrap", parent="v1", base_version="v1")
    versions.activate("v1")
    db.dispose()
    words = {"v1": " wrote the first version.", "v2": " wrote the second version."}
    return ScriptedBackend(
        text=lambda request, _: words[request.version or "v1"], model_version="v1"
    )


def start_server(
    tmp_path: Path, model_dir: Path, with_admin: bool = False, review: bool = False
) -> ServerThread:
    thread = ServerThread(tmp_path, model_dir, with_admin, review)
    thread.start()
    assert thread.ready.wait(60), "the web server did not start"
    if thread.error:
        raise thread.error
    return thread


@pytest.fixture
def server(tmp_path: Path, model_dir: Path) -> Any:
    thread = start_server(tmp_path, model_dir)
    yield thread
    thread.shutdown()


@pytest.fixture
def admin_server(tmp_path: Path, model_dir: Path) -> Any:
    """The same server over scripted admin services, and one finished training run."""
    thread = start_server(tmp_path, model_dir, with_admin=True)
    assert thread.app is not None
    with thread.app.db.session() as session:
        session.add(
            TrainingRun(
                trigger="manual",
                requested_by="web-admin-x",
                status="succeeded",
                dataset_size=42,
                loss_log=[{"step": i, "loss": 4.0 / (1 + i / 5)} for i in range(1, 41)],
                progress=1.0,
                model_version="bootstrap-1",
            )
        )
    yield thread
    thread.shutdown()


@pytest.fixture
def review_server(tmp_path: Path, model_dir: Path) -> Any:
    thread = start_server(tmp_path, model_dir, review=True)
    yield thread
    thread.shutdown()


@pytest.fixture
def chromium() -> Any:
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.skip(f"{CHROMIUM} is absent: apt-get install -y chromium to run the browser test")
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright for Python is absent: pip install playwright"
    )
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def test_generate_stream_rate_and_see_it_in_the_dashboard(server: Any, chromium: Any) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.add_init_script(
        "window.__chunks = [];"
        "document.addEventListener('gpt2bot:chunk', e => __chunks.push(e.detail));"
    )
    page.goto(server.url + "/")
    page.wait_for_selector("#model:has-text('bootstrap-1')")  # (the CSP forbids eval-based waits)
    # every sampling input has a label (keyboard and screen-reader users)
    assert page.evaluate(
        "[...document.querySelectorAll('#params input[type=number]')].every(i => i.labels.length)"
    )

    # Generate two samples with a prompt that is HTML
    page.fill("#prompt", XSS)
    page.click("#settings summary")
    page.fill("#param-max_new_tokens", "24")
    page.fill("#param-samples", "2")
    page.focus("#prompt")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#status:has-text('Done')", timeout=WAIT_MS)
    chunks = page.evaluate("window.__chunks")
    assert chunks and all(c["pending"] for c in chunks), chunks  # shown before the end
    assert all(c["shown"] > 0 for c in chunks)
    cards = page.locator("#thread .card")
    assert cards.count() == 2
    # chunks land in their own sample's card; a sample of the tiny model that ends within the
    # moderation window (or at once, at EOS) shows its text only when it is done
    outputs = [cards.nth(i).locator(".output").text_content() for i in range(2)]
    assert {c["sample"] for c in chunks} <= {i for i, text in enumerate(outputs) if text}
    assert cards.first.locator(".prompt").text_content() == XSS  # as text,
    assert page.locator("#thread img").count() == 0  # never as an element
    assert page.locator("#history li").count() == 2

    # Rate the first output, then regenerate it and continue it
    cards.first.locator("button.up").click()
    page.wait_for_selector("#thread .card >> nth=0 >> button.up[aria-pressed=true]")
    cards.first.locator("button.regen").click()
    page.wait_for_selector("#thread .card:not(.pending) >> nth=2", timeout=WAIT_MS)
    assert "regenerated" in cards.nth(1).locator(".meta").text_content()
    page.screenshot(path=str(SCREENSHOTS / "playground.png"), full_page=True)

    # the address names the conversation: a reload shows it again, in order
    assert "#c=" in page.url
    page.reload()
    page.wait_for_selector("#thread .card >> nth=2", timeout=WAIT_MS)
    assert page.locator("#thread .card").count() == 3
    assert page.locator("#thread .card").first.locator(".prompt").text_content() == XSS

    phone = chromium.new_page(viewport={"width": 375, "height": 800})
    phone.goto(server.url + "/")
    phone.fill("#prompt", "On a small phone screen")
    phone.click("#generate")
    phone.wait_for_selector("#status:has-text('Done')", timeout=WAIT_MS)
    assert phone.evaluate("document.documentElement.scrollWidth <= 375 + 1")  # no sideways scroll
    phone.screenshot(path=str(SCREENSHOTS / "playground-phone.png"), full_page=True)

    # The dashboard: log in, see the rating in the stats
    page.goto(server.url + "/admin")
    page.fill("#token", "wrong-token")
    page.press("#token", "Enter")
    page.wait_for_selector("#login-msg:has-text('not right')")
    page.fill("#token", ADMIN_TOKEN)
    page.press("#token", "Enter")
    page.wait_for_selector("#stats tbody tr", timeout=WAIT_MS)
    row = page.locator("#stats tbody tr").first.locator("td")
    # 4 generations (3 here, 1 on the phone), 1 rating, mean 1, 100% positive, 1 rater
    expected = ["bootstrap-1", "4", "1", "1.00", "100%", "1"]
    assert [row.nth(i).text_content() for i in range(6)] == expected
    assert page.locator("#stats-chart svg rect").count() == 2
    page.wait_for_selector("#gens tbody tr >> nth=3")
    assert XSS in page.locator("#gens").text_content() and page.locator("#gens img").count() == 0
    # the real learning loop is wired in: its panels are live and their buttons usable
    assert page.locator("#retrain").is_enabled() and page.locator("#rollback").is_enabled()
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    assert dialogs == []  # the prompt's onerror=alert(1) never ran


def test_dashboard_admin_panels_work_from_the_keyboard(admin_server: Any, chromium: Any) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(admin_server.url + "/admin")
    page.fill("#token", ADMIN_TOKEN)
    page.press("#token", "Enter")
    page.wait_for_selector("#loss-chart svg path.loss")
    assert "#1" in page.locator("#runs tbody").text_content()
    # curation: type a text that is HTML, submit with the keyboard, see it listed as text
    page.fill("#curate-text", XSS)
    page.focus("#curate-form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#curation-msg:has-text('Added 1')")
    page.wait_for_selector("#curation tbody td.text")
    assert page.locator("#curation tbody td.text").first.text_content() == XSS
    assert page.locator("#curation img").count() == 0
    page.click("#retrain")
    page.wait_for_selector("#training-msg:has-text('started')")
    page.wait_for_selector("#training-current progress")
    page.wait_for_selector("#audit tbody tr:has-text('curate.add')")
    page.screenshot(path=str(SCREENSHOTS / "dashboard-admin.png"), full_page=True)
    phone = chromium.new_page(viewport={"width": 375, "height": 800})
    phone.goto(admin_server.url + "/admin")
    phone.wait_for_selector("#login:not([hidden])")
    assert not phone.locator("#dashboard").is_visible()  # nothing but the login before it
    phone.screenshot(path=str(SCREENSHOTS / "dashboard-login-phone.png"), full_page=True)


def test_blind_review_votes_reveal_the_versions_and_move_the_win_rate(
    review_server: Any, chromium: Any
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(review_server.url + "/admin/review")
    page.wait_for_selector("#need-login:not([hidden])")  # owners only
    page.goto(review_server.url + "/admin")
    page.fill("#token", ADMIN_TOKEN)
    page.press("#token", "Enter")
    page.wait_for_selector("#stats tbody tr")
    page.click("text=Blind review")
    page.wait_for_selector("#vote-a:not([disabled])", timeout=WAIT_MS)
    shown = {page.locator(f"#output-{side}").text_content() for side in "ab"}
    assert shown == {" wrote the first version.", " wrote the second version."}
    pair = page.locator(".pair").text_content()
    assert "v1" not in pair and "v2" not in pair  # no names beside the outputs before the vote
    assert page.locator("#rates tbody").text_content() == "No verdicts yet."

    a_text = page.locator("#output-a").text_content()
    page.click("#vote-a")
    page.wait_for_selector("#reveal-a:not([hidden])")
    a_version = "v1" if "first" in a_text else "v2"
    assert page.locator("#reveal-a").text_content() == f"A was {a_version} — preferred"
    assert f"you preferred {a_version}" in page.locator("#review-msg").text_content()
    row = page.locator("#rates tbody tr").first.locator("td")
    wins = "1 – 0" if a_version == "v1" else "0 – 1"
    assert [row.nth(i).text_content() for i in range(3)] == ["v1 vs v2", "1", wins]
    page.screenshot(path=str(SCREENSHOTS / "review.png"), full_page=True)

    page.keyboard.press("Enter")  # "Next pair" has the focus
    page.wait_for_selector("#vote-tie:not([disabled])", timeout=WAIT_MS)
    assert page.locator("#reveal-a").is_hidden()
    page.click("#vote-tie")
    page.wait_for_selector("#rates tbody tr td:text-is('2')")
    rates = page.locator("#rates tbody tr").first.locator("td")
    assert rates.nth(3).text_content() == "1"  # one tie
    expected = "75% – 25%" if a_version == "v1" else "25% – 75%"
    assert rates.nth(4).text_content() == expected


async def liked_on_the_candidate(app: App) -> None:
    """A member whom the running experiment serves the candidate generates; another likes it."""
    for n in range(1000):
        assignment = await app.admin.experiments.arm_for("web", f"m{n}")
        if assignment is not None and assignment.arm == "candidate":
            done = await app.chat.generate(Origin("web", f"m{n}"), "Hello")
            await app.chat.rate(done.generations[0].id, "someone-else", "👍")
            return
    raise AssertionError("nobody drew the candidate")


def test_an_owner_starts_an_experiment_from_the_dashboard_and_watches_it(
    review_server: Any, chromium: Any
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.goto(review_server.url + "/admin")
    page.fill("#token", ADMIN_TOKEN)
    page.press("#token", "Enter")
    page.wait_for_selector("#ab-summary:has-text('No experiment has run yet')")
    assert page.locator("#ab-version option").all_text_contents() == ["v2"]  # not the active v1
    # the models panel names each version's base: v2 is an adapter over v1
    page.wait_for_selector("#models tbody tr:has-text('adapter of v1')")
    bases = page.locator("#models tbody tr td:nth-child(3)").all_text_contents()
    assert bases == ["full model (bootstrap)", "adapter of v1"]
    assert page.locator("#ab-stop").is_disabled()

    page.select_option("#ab-version", "v2")
    page.fill("#ab-share", "0.3")
    page.focus("#ab-form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#ab-msg:has-text('Experiment #1 started: v1 against v2')")
    page.wait_for_selector("#ab-summary:has-text('Experiment #1: running')")
    arms = page.locator("#ab-arms tbody tr")
    assert [arms.nth(i).locator("td").nth(1).text_content() for i in range(2)] == ["v1", "v2"]
    assert arms.nth(1).locator("td").nth(2).text_content() == "30%"
    assert arms.nth(1).locator("td").nth(5).text_content() == "–"  # no ratings yet
    assert page.locator("#ab-chart svg rect.ab-band").count() == 2
    assert "decision so far: continue" in (page.locator("#ab-decision").text_content() or "")
    assert "no verdicts yet" in (page.locator("#ab-review").text_content() or "")
    assert page.locator("#ab-form button[type=submit]").is_disabled()  # one at a time
    page.wait_for_selector("#audit tbody tr:has-text('ab.start')")

    # a member served by the candidate is liked: the panel refreshes itself while it runs
    app, loop = review_server.app, review_server._loop
    asyncio.run_coroutine_threadsafe(liked_on_the_candidate(app), loop).result(30)
    page.wait_for_selector("#ab-chart svg circle.ab-candidate", timeout=WAIT_MS)
    assert arms.nth(1).locator("td").nth(5).text_content() == "100%"
    page.screenshot(path=str(SCREENSHOTS / "dashboard-ab.png"), full_page=True)

    page.click("#ab-stop")
    page.wait_for_selector("#ab-summary:has-text('Experiment #1: stopped')")
    assert "stopped by" in (page.locator("#ab-decision").text_content() or "")

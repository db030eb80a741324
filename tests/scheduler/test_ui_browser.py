"""The web view in a real browser (Debian's chromium driven by Playwright, no browser download)
against a real `tekscore serve` with real jobs: sign in once with the API token, filter the jobs
table, open a running streaming job by keyboard, see its pipeline drawn, watch its counters move
while records are scored, with its replica row and the endpoints the status lists (the test
posts to the flow at that endpoint), read its logs and events; a read-only token sees the job without a
cancel button; cancel it through the confirmation and see CANCELLED. Screenshots of the two
pages are saved in the test's temporary folder."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import CHROMIUM, FLAGS
from tests.scheduler.conftest import TOKEN, Scheduler, http_streaming_ir

playwright = pytest.importorskip("playwright.sync_api", reason="playwright (test extra) missing")

FINISHED = {"SUCCEEDED", "FAILED", "CANCELLED"}
RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
DEADLINE_MS = 90_000
TEN_OR_MORE = re.compile(r"^[1-9][0-9]+$")
THROUGHPUT = re.compile(r"flow on-demand throughput now: [\d,]+ in, ")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    playwright.expect.set_options(timeout=DEADLINE_MS)  # a busy machine: generous deadlines
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == [], f"the page raised: {errors}"


class Traffic:
    """Scores records through an HTTP flow from a thread until stopped (bounded: at most
    `limit` requests), so the flow's counters keep moving."""

    def __init__(self, url: str, limit: int = 5000) -> None:
        self.url = url
        self.limit = limit
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set() and self.sent < self.limit:
                try:
                    client.post(self.url, json=[RECORD] * 5).raise_for_status()
                    self.sent += 1
                except httpx.HTTPError:
                    self.stop.wait(0.05)  # the flow is stopping (cancel): ease off

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def http_flow_url(scheduler: Scheduler, job_id: str) -> str:
    """Where the HTTP flow takes records, as the job's status says."""
    url: str = scheduler.job(job_id)["flows"]["on-demand"]["endpoint"]
    return url


def counter(page: Any, name: str) -> int:
    text = page.locator(f'#flow-on-demand [data-counter="{name}"]').inner_text()
    return int(text.replace(",", ""))


READER = "reader-token"


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(url)
    page.get_by_label("API token").fill(token)
    page.get_by_label("API token").press("Enter")
    page.wait_for_selector("body[data-ready=true]")


@pytest.mark.parametrize("scheduler", [f"{TOKEN},{READER}:read"], indirect=True)
def test_an_operator_follows_and_cancels_a_running_job(
    scheduler: Scheduler, iris: Path, page: Any, browser: Any, tmp_path: Path
) -> None:
    batch = scheduler.start_job(
        [iris / "model.yaml", iris / "batch.yaml"], labels={"team": "ops"}, name="nightly iris"
    )
    streaming = scheduler.start_job(
        [iris / "model.yaml", http_streaming_ir(iris)], labels={"team": "risk"}
    )
    scheduler.wait_for(batch["id"], FINISHED)
    assert scheduler.wait_for(streaming["id"], {"RUNNING"} | FINISHED)["state"] == "RUNNING"
    expect = playwright.expect
    page.set_default_timeout(DEADLINE_MS)

    # the jobs table, after one sign-in
    page.goto(f"{scheduler.url}/ui/")
    expect(page.locator("#sign-in")).to_be_visible()
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in .error-text")).to_have_text(
        "The server did not accept that token."
    )
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_label("API token").press("Enter")
    rows = page.locator("#jobs tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator(f'tr[data-id="{batch["id"]}"]')).to_contain_text("SUCCEEDED")
    expect(page.locator(f'tr[data-id="{batch["id"]}"]')).to_contain_text("nightly iris")
    page.locator(f'tr[data-id="{streaming["id"]}"]').screenshot(path=tmp_path / "row.png")
    page.screenshot(path=tmp_path / "jobs.png", full_page=True)

    page.get_by_label("State").select_option("RUNNING")  # filters apply and go in the address
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", streaming["id"])
    assert "state=RUNNING" in page.url
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Labels (key=value, space-separated)").fill("team=ops")
    page.get_by_label("Labels (key=value, space-separated)").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", batch["id"])
    page.get_by_role("button", name="Clear").click()
    expect(rows).to_have_count(2)

    # open the running job by keyboard: the token is not asked again
    page.get_by_role("link", name=streaming["id"]).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/jobs/{streaming['id']}")
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#sign-in")).to_be_hidden()
    expect(page.locator("#job-state")).to_have_text("RUNNING")
    graph = page.locator("#graph")
    for node in ("source:requests", "flow:on-demand", "service:iris", "sink:nowhere"):
        expect(graph.locator(f'[data-node="{node}"]')).to_have_count(1)
    expect(page.locator("#graph-caption")).to_have_text(
        "Source channels: requests. Scoring flows: on-demand. Scoring services: iris. "
        "Sinks: nowhere."
    )

    # the endpoints of the running job: the flow's and the service's, as the API gives them
    endpoint = http_flow_url(scheduler, streaming["id"])
    expect(page.locator("#flow-on-demand")).to_contain_text(endpoint)
    service_url = scheduler.job(streaming["id"])["services"]["iris"]["endpoint"]
    expect(page.locator("#services tbody")).to_contain_text(service_url)

    # the counters move while records are scored, and so does the chart
    with Traffic(endpoint) as traffic:
        cell = page.locator('#flow-on-demand [data-counter="in"]')
        seen = [counter(page, "in")]
        for _ in range(2):  # it moves, and moves again
            expect(cell).not_to_have_text(f"{seen[-1]:,}")
            seen.append(counter(page, "in"))
        assert seen == sorted(seen) and seen[0] < seen[1] < seen[2], seen
        assert counter(page, "out") <= counter(page, "in")
        replica = page.locator('tr.replica[data-flow="on-demand"]')  # its one process, a row
        expect(replica).to_have_count(1)
        expect(replica).to_contain_text("replica 0")
        expect(replica.locator(".state")).to_have_text("RUNNING")
        chart = page.locator('figure.chart[data-flow="on-demand"] svg')
        expect(chart).to_have_attribute("aria-label", THROUGHPUT)
        expect(graph.locator('[data-node="flow:on-demand"] .sub')).to_contain_text("RUNNING")
        samples = page.locator('figure.chart[data-flow="on-demand"]')
        expect(samples).to_have_attribute("data-samples", TEN_OR_MORE)  # a chart worth a look
        page.get_by_label("Part", exact=True).select_option("service=iris")
        expect(page.locator("#log")).to_contain_text("==> service/iris <==")
        page.screenshot(path=tmp_path / "job.png", full_page=True)

        # a read-only token sees the same job, without the cancel button
        reader = browser.new_context()
        try:
            readonly = reader.new_page()
            sign_in(readonly, f"{scheduler.url}/ui/jobs/{streaming['id']}", READER)
            expect(readonly.locator("#who")).to_have_text("signed in: read")
            expect(readonly.locator("#job-state")).to_have_text("RUNNING")
            expect(readonly.locator('#flow-on-demand [data-counter="in"]')).not_to_have_text("0")
            expect(readonly.get_by_role("button", name="Cancel job…")).to_be_hidden()
        finally:
            reader.close()
        expect(page.locator("#who")).to_have_text("signed in: admin")

        # cancel: Escape keeps it running, the confirmation cancels it
        page.get_by_role("button", name="Cancel job…").click()
        dialog = page.get_by_role("dialog", name="Cancel this job?")
        expect(dialog).to_be_visible()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        assert scheduler.job(streaming["id"])["state"] == "RUNNING"
        page.get_by_role("button", name="Cancel job…").click()
        dialog.get_by_role("button", name="Cancel job").click()
        expect(page.locator("#job-state")).to_have_text("CANCELLED")
    assert traffic.sent > 0
    assert scheduler.job(streaming["id"])["state"] == "CANCELLED"
    expect(page.get_by_role("button", name="Cancel job…")).to_be_hidden()
    # the flow stopped with the job: CANCELLED, and its endpoint is gone
    expect(page.locator("#flow-on-demand .state")).to_have_text("CANCELLED")
    expect(page.locator("#flow-on-demand")).not_to_contain_text(endpoint)
    expect(page.locator("#events li").last).to_contain_text("CANCELLED")
    states = [line.split()[0] for line in page.locator("#events li .state").all_inner_texts()]
    assert states == ["PENDING", "INSTALLING", "RUNNING", "STOPPING", "CANCELLED"]
    page.screenshot(path=tmp_path / "job-cancelled.png", full_page=True)
    for name in ("jobs.png", "job.png", "job-cancelled.png"):
        assert (tmp_path / name).stat().st_size > 10_000

"""Benchmark of the web view with 10,000 jobs stored: how long the pages take in a real browser
(Debian's chromium driven by Playwright), against the API call each page is built from,
measured in the same run.

A real `tekscore serve` whose store was filled directly with `--jobs` finished iris jobs (the
helper of bench/scheduler.py: labels `team=t0..t9`, one job in 10 each, and `run=r<i>`, one in
10,000). Measured, each `--runs` times:
- **jobs page ready**: navigation start to the table of the newest 50 jobs drawn (the page's own
  `performance.now()` when it is ready: HTML, CSS, the JS modules, `/api/v1/userinfo`, one
  `GET /api/v1/jobs?limit=50`, the rows);
- **page turn**: after a click on "Older", the page's API call (with a cursor) to the next 50
  rows drawn, by the page's clock;
- **label filter**: after a label typed and Enter, the API call to the table redrawn, for a label
  one job in 10 carries and one only one job carries;
- **job page ready**: navigation start to a stored job drawn (job, values, events, logs).
Baselines: the API call each page waits for (`GET /api/v1/jobs?limit=50`, with the same
filter, `GET /api/v1/jobs/{id}`) from Python (httpx, one keep-alive connection), and the list and
job calls by `fetch()` inside the page. Printed: medians in ms and the ratio of each page to its
API call. Live updates are switched off for the measurement.

Run: `.venv/bin/python bench/ui.py [--jobs 10000] [--runs 10]`. Needs Debian's chromium and the
`playwright` test extra. Loopback only; the server is stopped at the end; about 1-2 minutes
(filling the store is most of it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from siblings import sibling

_b: Any = sibling("scheduler")
AUTH, TOKEN, scheduler, uptime = _b.AUTH, _b.TOKEN, _b.scheduler, _b.uptime
fill_store, iris_folder = _b.fill_store, _b.iris_folder
from tests.browser import CHROMIUM, FLAGS  # noqa: E402  (the project root is on the path now)

STATIC = Path(__file__).resolve().parents[1] / "scheduler" / "ui" / "static"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def api_latency(url: str, path: str, runs: int) -> float:
    """Median seconds of `GET path` on one keep-alive connection (after one warm-up)."""
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        client.get(path).raise_for_status()
        samples = []
        for _ in range(runs):
            began = time.perf_counter()
            client.get(path).raise_for_status()
            samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def ready_ms(page: Any, url: str) -> float:
    """Navigation start to the page's `data-ready`, by the page's own clock."""
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    return float(page.locator("body").get_attribute("data-ready-ms"))


def redraw(page: Any, action: Any) -> float:
    """Seconds the jobs table's next load took, by the page's own clock: from the API call
    to the rows drawn (what `action()`, a click or an Enter, starts)."""
    before = int(page.locator("body").get_attribute("data-loads"))
    action()
    page.wait_for_selector(f'body[data-loads="{before + 1}"]')
    return float(page.locator("body").get_attribute("data-load-ms")) / 1000


FETCH = """async (path) => {
  const began = performance.now();
  const answer = await fetch(path, {headers: {Authorization: `Bearer ${TOKEN}`}});
  await answer.json();
  return performance.now() - began;
}"""


def fetch_ms(page: Any, path: str, runs: int) -> float:
    """Median ms of `fetch(path)` + JSON parse inside the page: the browser's own API call."""
    script = FETCH.replace("${TOKEN}", TOKEN)
    page.evaluate(script, path)
    return statistics.median(page.evaluate(script, path) for _ in range(runs))


def browse(url: str, job_id: str, runs: int, one: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {k: [] for k in ("jobs", "turn", "team", "run", "job")}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{url}/ui/")  # sign in once: the token stays in this tab's session
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_label("API token").press("Enter")
        page.wait_for_selector("body[data-ready=true]")
        fetched = {
            "list": fetch_ms(page, "/api/v1/jobs?limit=50", 20),
            "job": fetch_ms(page, f"/api/v1/jobs/{job_id}", 20),
        }
        for _ in range(runs + 1):  # the first of each is a warm-up (cold caches)
            out["jobs"].append(ready_ms(page, f"{url}/ui/") / 1000)
            assert page.locator("#jobs tbody tr").count() == 50
            page.get_by_role("button", name="Live updates: on").click()
            older = page.get_by_role("button", name="Older →")
            out["turn"].append(redraw(page, older.click))
            labels = page.get_by_label("Labels (key=value, space-separated)")
            labels.fill("team=t3")
            out["team"].append(redraw(page, lambda field=labels: field.press("Enter")))
            labels.fill(one)
            out["run"].append(redraw(page, lambda field=labels: field.press("Enter")))
            assert page.locator("#jobs tbody tr").count() == 1
            out["job"].append(ready_ms(page, f"{url}/ui/jobs/{job_id}") / 1000)
        browser.close()
    return {k: median_ms(v[1:]) for k, v in out.items()} | {
        f"fetch-{k}": v for k, v in fetched.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="web view benchmark")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(uptime())
    if os.getloadavg()[0] > 1.0:
        print("(the machine is busy: numbers will be noisy; rerun when the load average is < 1)")
    weight = sum(p.stat().st_size for p in STATIC.iterdir())
    print(f"the view's files: {len(list(STATIC.iterdir()))}, {weight / 1024:.1f} KiB uncompressed")
    with tempfile.TemporaryDirectory(prefix="tekscore-bench-") as name:
        tmp = Path(name)
        iris = iris_folder(tmp / "iris", 150)
        began = time.perf_counter()
        ids = asyncio.run(fill_store(tmp / "home", iris, args.jobs))
        print(f"{args.jobs:,} jobs stored in {time.perf_counter() - began:.0f} s")
        one = f"run=r{args.jobs // 2}"  # the label of one job only
        with scheduler(tmp / "home") as server:
            calls = {
                "list": "/api/v1/jobs?limit=50",
                "team": "/api/v1/jobs?limit=50&label=team=t3",
                "run": f"/api/v1/jobs?limit=50&label={one}",
                "job": f"/api/v1/jobs/{ids[0]}",
            }
            api = {k: median_ms([api_latency(server.url, path, 50)]) for k, path in calls.items()}
            found = browse(server.url, ids[0], args.runs, one)
    print(f"\nmedians of {args.runs} runs, {args.jobs:,} jobs stored:")
    rows = [
        ("jobs page ready (50 newest)", found["jobs"], api["list"], "GET /jobs?limit=50"),
        ("page turn (Older →)", found["turn"], api["list"], "GET /jobs?limit=50"),
        ("label filter, 1 job in 10", found["team"], api["team"], "same, label=team=t3"),
        ("label filter, 1 job in all", found["run"], api["run"], f"same, label={one}"),
        ("job page ready", found["job"], api["job"], "GET /jobs/{id}"),
    ]
    for what, page_ms, api_ms, call in rows:
        print(
            f"  {what:<30} {page_ms:7.1f} ms   ({call} from Python: {api_ms:5.1f} ms; "
            f"page = {page_ms / api_ms:5.1f}x its API call)"
        )
    print(
        f"  the same calls by fetch() in the page: list {found['fetch-list']:.1f} ms, "
        f"job {found['fetch-job']:.1f} ms"
    )
    print(uptime())


if __name__ == "__main__":
    main()

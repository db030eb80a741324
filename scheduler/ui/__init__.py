"""The operator's web view at `/ui`, served by the scheduling server itself (docs/ui.md).

Static pages only: HTML, one CSS file and JavaScript modules under `static/`, no build step and
no library. The pages hold no data: in the browser they call the JSON API (`/api/v1/...`) with
the API token the operator entered once, kept in the browser session (`sessionStorage`), so the
view has exactly the API's auth. `install(app)` adds the routes; serving reads the files under
`static/` (I/O), nothing happens at import time.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

# No inline script or style, nothing from elsewhere: what the pages load is ours.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html", headers=HEADERS)


@router.get("/")
async def root() -> RedirectResponse:
    """The server's address opens the web view."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui")
async def ui() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
async def jobs_page() -> FileResponse:
    """The jobs table."""
    return _page("jobs.html")


@router.get("/ui/jobs/{job_id}")
async def job_page(job_id: str) -> FileResponse:
    """One job (the page reads the id from its address)."""
    return _page("job.html")


def install(app: FastAPI) -> None:
    """Serve the web view on `app`: the two pages and their static files."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")

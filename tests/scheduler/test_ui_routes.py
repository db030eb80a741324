"""The web view's routes in-process: the pages need no token (they hold no data) and carry a
strict Content-Security-Policy; every file they load, and every module those import, is served;
nothing comes from another site; `/api/v1/userinfo` tells a token's role under the API's auth
(a read-only token: in the browser test)."""

from __future__ import annotations

import re

from scheduler.ui import STATIC
from tests.scheduler.conftest import Api

SVG_NAMESPACE = "http://www.w3.org/2000/svg"


async def test_the_root_and_ui_lead_to_the_jobs_page(api: Api) -> None:
    for path in ("/", "/ui"):
        response = await api.anonymous.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui/"


async def test_pages_are_served_without_a_token_with_a_strict_policy(api: Api) -> None:
    for path, script in (("/ui/", "jobs.js"), ("/ui/jobs/j-anything", "job.js")):
        page = await api.anonymous.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert f'<script type="module" src="/ui/static/{script}"></script>' in page.text
        assert "<script>" not in page.text and "style=" not in page.text  # nothing inline


async def test_every_file_a_page_loads_and_every_module_import_is_served(api: Api) -> None:
    wanted = {"/ui/static/ui.css", "/ui/static/jobs.js", "/ui/static/job.js"}
    seen: set[str] = set()
    while wanted - seen:
        path = sorted(wanted - seen)[0]
        seen.add(path)
        response = await api.anonymous.get(path)
        assert response.status_code == 200, path
        if path.endswith(".js"):
            assert response.headers["content-type"].startswith("text/javascript"), path
            wanted |= set(re.findall(r'from "(/ui/static/[\w.]+)"', response.text))
    assert seen == {f"/ui/static/{p.name}" for p in STATIC.iterdir() if p.suffix != ".html"}


def test_the_view_loads_nothing_from_another_site() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")
        assert not re.search(r"(https?:)?//[\w.-]+\.\w+/", text), path.name


async def test_userinfo_says_what_the_token_may_do(api: Api) -> None:
    who = await api.http.get("/api/v1/userinfo")
    assert who.status_code == 200
    assert who.json() == {
        "authenticated": True,
        "role": "admin",  # TOKEN has no role suffix: the form before roles, full access
        "roles": ["read", "submit", "admin"],
    }
    assert (await api.anonymous.get("/api/v1/userinfo")).status_code == 401
    wrong = await api.anonymous.get(
        "/api/v1/userinfo", headers={"Authorization": "Bearer not-a-token"}
    )
    assert wrong.status_code == 403

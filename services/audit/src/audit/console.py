"""The ops console at ``/ops``: plain HTML, CSS and JavaScript shipped inside this package (no
build step, no CDN). The page shell and its assets need no identity; everything they show
comes from the ops-only API, which the page calls with the identity the user gives it."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

router = APIRouter(tags=["ops console"])


@router.get("/ops", response_class=HTMLResponse, summary="The ops console (HTML page)")
def console() -> Response:
    page = (files("audit") / "static" / "ops.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


@router.get("/ops/", include_in_schema=False)
def console_slash() -> Response:
    return RedirectResponse("/ops")


def install_console(app: FastAPI) -> None:
    """Serve the page at /ops and its assets at /ops/assets/<file>."""
    app.include_router(router)
    app.mount("/ops/assets", StaticFiles(packages=[("audit", "static")]), name="ops-assets")

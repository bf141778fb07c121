"""The operator console (serve/console/): one page and its scripts, served from the package
itself, nothing fetched from elsewhere at build or run time.

The page holds no data. It asks for an API key, keeps it in the page's memory (no
storage another page of this origin could read), and reads everything through the API
with that key, so it shows exactly what the key may read:
the routes refuse the rest, as they refuse any client. Served without a key (as /docs is);
a strict Content-Security-Policy lets it run only its own scripts and talk only to this
origin, so tenant text rendered on it can never run as code.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from serve.errors import not_found
from serve.routes.errors import EngramRoute

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
router = APIRouter(route_class=EngramRoute)


def _assets() -> dict[str, Path]:
    """The files the console may serve, by name: only these (no path from the URL is opened)."""
    return {p.name: p for p in CONSOLE_DIR.iterdir() if p.suffix in MEDIA_TYPES and p.name != "index.html"}


ASSETS = _assets()


def _file(path: Path) -> Response:
    return Response(path.read_bytes(), media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS)


@router.get("/console", include_in_schema=False)
async def console_page() -> Response:
    return _file(CONSOLE_DIR / "index.html")


@router.get("/console/", include_in_schema=False)
async def console_slash() -> Response:
    return RedirectResponse("/console", status_code=308)


@router.get("/console/{asset}", include_in_schema=False)
async def console_asset(asset: str) -> Response:
    path = ASSETS.get(asset)
    if path is None:
        raise not_found("console_asset", asset)
    return _file(path)

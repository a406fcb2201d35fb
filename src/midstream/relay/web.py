"""The web page the relay serves at ``/``: static files shipped in the package, no build step.

``GET /`` answers a browser (``Accept: text/html``) with the page and anyone else with the relay's
JSON index; ``GET /web/<file>`` serves the page's modules and stylesheet from
``midstream/relay/static``. The page uses only the documented HTTP API (``/v1/runs...``), so it
works the same against one ``midstream serve`` or a fleet on a shared store.

Every response carries a strict Content-Security-Policy: scripts and styles only from this origin,
no inline script, no plugin, images only from this origin. The page builds its DOM with
``textContent`` and never inserts model output as HTML; the policy is the second line of defence.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = ["CSP", "STATIC", "wants_page", "web_routes"]

STATIC = Path(str(resources.files("midstream.relay") / "static"))
"""Where the page's files are (inside the installed package)."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}
_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def wants_page(request: Request) -> bool:
    """True for a browser navigating to ``/`` (it asks for HTML first)."""
    return "text/html" in request.headers.get("accept", "")


def page() -> Response:
    """The page itself (``index.html``)."""
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8", headers=_HEADERS)


async def _asset(request: Request) -> Response:
    name = request.path_params["name"]
    path = STATIC / name
    # Only files directly in the folder, with a known type: no traversal, no listing.
    if "/" in name or "\\" in name or name.startswith(".") or path.suffix not in _TYPES or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, media_type=f"{_TYPES[path.suffix]}; charset=utf-8", headers=_HEADERS)


def web_routes() -> list[BaseRoute]:
    """The routes of the page's files (``/web/<file>``); ``/`` itself is the relay's index route."""
    return [Route("/web/{name}", _asset, methods=["GET", "HEAD"])]

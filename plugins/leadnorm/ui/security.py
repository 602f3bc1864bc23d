"""What stands in front of every route of the plugin: Airflow's API address as configured, the
refusal of cross-site requests that would change something, and the security headers of
every response.

- The API server's address comes from Airflow's configuration (`api_base_url`), never from
  the request: its Host header is the caller's to choose, and the upload sends the user's
  credentials there.
- Airflow's UI signs in by a cookie, which a browser attaches to a form another site posts
  here too. So a request other than GET or HEAD must come from this origin: a browser's
  `Sec-Fetch-Site` must say `same-origin`; without it, an `Origin` must be the configured
  base URL's; with neither (not a browser), it must carry its token as an `Authorization`
  header, which no cross-site form can set. Anything else gets 403 before its body is read.
- Every response carries a Content-Security-Policy that runs no inline script, `nosniff`,
  `Referrer-Policy: same-origin`, and framing by this origin only (Airflow's UI shows the
  pages in an iframe). A response may bring its own policy: the Data Docs bring theirs
  (`leadnorm.quality.datadocs.CONTENT_SECURITY_POLICY`, which allows inline styles).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadnorm.airflow_support import api_base_url

SAFE_METHODS = frozenset({"GET", "HEAD"})  # they change nothing: no origin is asked of them
DEFAULT_PORTS = {"http": 80, "https": 443}

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",  # for browsers that do not read frame-ancestors
}


def origin_of(url: str) -> str:
    """`scheme://host[:port]` as a browser's Origin header writes it (no default port)."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:  # not a number: no origin this server has
        return ""
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port and port != DEFAULT_PORTS.get(scheme) else "")


def cross_site_refusal(headers: Headers) -> str | None:
    """Why a state-changing request with these headers is refused, or None when it is not."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return None if site == "same-origin" else "refused: the request was sent by another site (Sec-Fetch-Site)"
    origin = headers.get("origin")
    if origin is not None:
        if origin_of(origin) == origin_of(api_base_url()):
            return None
        return "refused: the request was sent from another origin than Airflow's base URL"
    if headers.get("authorization", "").lower().startswith("bearer "):
        return None
    return "refused: a change needs a browser's Sec-Fetch-Site or Origin header, or an Authorization bearer token"


class RefuseCrossSite:
    """A request other than GET or HEAD gets 403 unless `cross_site_refusal` lets it through:
    before any route, any body read, anything stored or triggered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            if reason := cross_site_refusal(Headers(scope=scope)):
                await JSONResponse({"detail": reason}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AddSecurityHeaders:
    """`SECURITY_HEADERS` on every response, but a header the response already sets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


class SecuredApp(FastAPI):
    """A FastAPI app whose every response has the security headers: the middleware wraps the
    whole stack, so the 500 page of Starlette's outermost error middleware has them too."""

    def build_middleware_stack(self) -> ASGIApp:
        return AddSecurityHeaders(super().build_middleware_stack())

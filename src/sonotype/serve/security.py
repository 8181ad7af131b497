"""Who may talk to the service: a Host allow-list, a WebSocket Origin check and a bearer token.

A server on 127.0.0.1 is reachable by every web page the user opens: a page may open a
WebSocket to ``ws://127.0.0.1:8000/v1/stream`` (browsers send its ``Origin`` but do not
block it), and through DNS rebinding a page of ``evil.example`` may even read the answers
(its requests carry ``Host: evil.example``). So :class:`Guard`, an ASGI middleware in front
of every route, answers

- 400 ``bad_host`` when the ``Host`` header (without its port) is not an allowed name
  (default, from ``sonotype serve``: the address served and the localhost forms;
  ``--allow-host`` adds more, ``*`` allows any);
- WebSocket close 1008 ``origin not allowed`` when a browser's ``Origin`` is neither the
  page's own origin (the ``Host`` it talks to) nor listed (``--allow-origin``);
- 401 ``unauthorized`` (with ``WWW-Authenticate: Bearer``) when a token is set
  (``--token`` / ``$SONOTYPE_TOKEN``) and an API request lacks ``Authorization: Bearer
  TOKEN`` (a WebSocket may send ``?token=TOKEN``: browsers cannot set its headers).

The page, its static files and the API docs stay public: they hold no data.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from urllib.parse import parse_qs, urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sonotype.errors import ParameterError

__all__ = ["LOCAL_HOSTS", "PUBLIC_PATHS", "Guard", "default_hosts", "host_name"]

log = logging.getLogger("sonotype.serve")

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
PUBLIC_PATHS = ("/", "/docs", "/openapi.json", "/static/")


def host_name(value: str) -> str:
    """The host of a ``Host`` header or a netloc, lower-case, without port, brackets or trailing dot."""
    v = value.strip().lower()
    if v.startswith("["):  # [::1]:8000
        return v[1:].split("]", 1)[0]
    if v.count(":") == 1:
        v = v.split(":", 1)[0]
    return v.rstrip(".")


def default_hosts(bind: str, extra: Iterable[str] = ()) -> list[str] | None:
    """The Host names a server bound to ``bind`` answers: ``bind``, the localhost forms and
    ``extra``; ``None`` (any) for a wildcard bind without ``extra``, or when ``extra`` holds ``*``."""
    extra = [e for e in extra if e]
    if "*" in extra:
        return None
    if host_name(bind) in WILDCARD_BINDS:
        return [host_name(e) for e in extra] or None
    return sorted({host_name(bind), *LOCAL_HOSTS, *(host_name(e) for e in extra)})


def _origin(value: str) -> str:
    """``scheme://host[:port]`` of an origin, normalised (lower-case, no path)."""
    u = urlsplit(value.strip().lower())
    if not u.scheme or not u.netloc:
        raise ParameterError(f"an origin is scheme://host[:port], got {value!r}")
    return f"{u.scheme}://{u.netloc}"


class Guard:
    """ASGI middleware refusing requests by Host, WebSocket Origin and bearer token (see the module notes).

    Parameters
    ----------
    app : ASGI app
    allow_hosts : list of str, optional
        Allowed Host names; ``None`` allows any.
    allow_origins : list of str, optional
        Origins allowed on WebSockets besides the page's own.
    token : str, optional
        The bearer token every API request must carry.
    """

    def __init__(self, app: ASGIApp, *, allow_hosts: Iterable[str] | None = None,
                 allow_origins: Iterable[str] | None = None, token: str | None = None) -> None:
        self.app = app
        self.hosts = None if allow_hosts is None else {host_name(h) for h in allow_hosts}
        self.origins = {_origin(o) for o in (allow_origins or ())}
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        refusal = self._refusal(scope, headers, host)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, error, detail = refusal
        rid = (scope.get("state") or {}).get("request_id", "-")
        log.warning("request %s: %s %s refused %d %s: %s", rid, scope.get("method", "WS"), scope.get("path"),
                    status, error, detail)
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:123]})
            return
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        resp = JSONResponse({"error": error, "detail": detail, "request_id": rid}, status_code=status, headers=extra)
        await resp(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str], host: str) -> tuple[int, str, str] | None:
        name = host_name(host)
        if self.hosts is not None and name not in self.hosts:
            return 400, "bad_host", f"Host {host[:80]!r} is not served here (allowed: {', '.join(sorted(self.hosts))}; " \
                                    "add names with --allow-host)"
        if scope["type"] == "websocket" and "origin" in headers:
            origin = headers["origin"]
            try:
                norm = _origin(origin)
            except ParameterError:
                norm = ""
            same = bool(norm) and urlsplit(norm).netloc == host.strip().lower()
            if not same and norm not in self.origins:
                return 403, "bad_origin", f"origin not allowed: {origin[:60]} (add it with --allow-origin)"
        if self.token is not None and not _public(scope.get("path", "")):
            given = headers.get("authorization", "")
            sent = given[7:].strip() if given.lower().startswith("bearer ") else ""
            if not sent and scope["type"] == "websocket":
                sent = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
            if not hmac.compare_digest(sent.encode(), self.token):
                return 401, "unauthorized", "this server needs 'Authorization: Bearer TOKEN' (the --token it was started with)"
        return None


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/")

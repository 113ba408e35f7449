"""Absolute URLs of a service's own routes (a 201's ``Location``) without searching the routes
and parsing the request's URL on every request.

Starlette's ``request.url_for`` asks the router for the route's path each time (FastAPI's
included routers answer by trying every route in turn, each miss raising and catching
``NoMatchFound``), then builds the request's base URL and joins the two through
``urllib.parse``: in the referrals API, with the FHIR routes beside the JSON ones, about 5 % of
the CPU of a journey's requests, for one ``Location`` header. :func:`url_for` asks Starlette
once per route and set of parameter names for the path with a marker in each parameter's
place, and once per base (scheme, Host, server, root path) for the URL's start, then joins
strings. Only values made of URL-unreserved characters take that way; any other value, and a
route whose parameters are not plain strings, take Starlette's own, so every answer and every
refusal stays Starlette's."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import URL, URLPath
from starlette.requests import Request

_MARK = "~{}~"
"""A parameter's place in a kept path: ``~`` may appear in a value, so a path is only kept
when each marker appears once in it and the values are checked apart (:data:`_PLAIN`)."""
_PLAIN = re.compile(r"[A-Za-z0-9._-]+")
"""Values joined in as they are: unreserved characters but ``~``, so Starlette would neither
escape nor refuse them."""
_END = "/rx-url-end"
_CACHE = "_rx_url_templates"
"""The router's attribute holding its paths with markers, by route name and parameter names."""
_BASES: dict[tuple[Any, ...], str | None] = {}
"""URL starts by (scheme, Host, server, root path); cleared when full (the Host header is the
client's to choose, so the ones kept are bounded)."""
_MOST_BASES = 64


def url_for(request: Request, name: str, /, **path_params: Any) -> URL:
    """``request.url_for(name, **path_params)``, the route's path and the base URL kept."""
    provider = request.scope.get("router") or request.scope.get("app")
    if provider is None or not all(
        isinstance(v, str) and _PLAIN.fullmatch(v) for v in path_params.values()
    ):
        return request.url_for(name, **path_params)
    template = _template(provider, name, tuple(sorted(path_params)))
    base = _base(request) if template is not None else None
    if template is None or base is None:
        return request.url_for(name, **path_params)
    path = template
    for key, value in path_params.items():
        path = path.replace(_MARK.format(key), value)
    return URL(base + path)


def _template(provider: Any, name: str, keys: tuple[str, ...]) -> str | None:
    """The route's path with a marker for each of ``keys``; ``None`` where Starlette would not
    give the markers back as they went in (no such route, a parameter that is not a plain
    string, a path for another protocol or host)."""
    known: dict[tuple[str, tuple[str, ...]], str | None] | None = getattr(provider, _CACHE, None)
    if known is None:
        known = {}
        setattr(provider, _CACHE, known)
    if (name, keys) not in known:
        try:
            found = provider.url_path_for(name, **{k: _MARK.format(k) for k in keys})
        except Exception:  # Starlette's refusal, given by Starlette's way on every request
            found = None
        usable = (
            found is not None
            and found.protocol == "http"
            and not found.host
            and all(str(found).count(_MARK.format(k)) == 1 for k in keys)
        )
        known[name, keys] = str(found) if usable else None
    return known[name, keys]


def _base(request: Request) -> str | None:
    """What Starlette puts before a route's path in this request's absolute URLs."""
    scope = request.scope
    host = next((value for key, value in scope["headers"] if key == b"host"), None)
    root = scope.get("app_root_path", scope.get("root_path", ""))
    server = scope.get("server")
    key = (scope.get("scheme", "http"), host, None if server is None else tuple(server), root)
    if key not in _BASES:
        marked = str(URLPath(_END, protocol="http").make_absolute_url(base_url=request.base_url))
        if len(_BASES) >= _MOST_BASES:
            _BASES.clear()
        _BASES[key] = marked.removesuffix(_END) if marked.endswith(_END) else None
    return _BASES[key]

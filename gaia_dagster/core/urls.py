"""URLs that come from miners (issue 18): a miner's endpoint and the store URL it answers.

Rule: a URL a miner gives is ``http`` or ``https``, names a host, carries no user name or password
and, for a store URL, is on the miner's own endpoint (scheme, host and port of its registered URL).
Anything else (``javascript:``, ``file:``, ``data:``, another host) is refused with the reason,
and only a URL that passes is ever shown as a link.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

WEB_SCHEMES = ("http", "https")


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a plain web URL to a host (None when it is)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as exc:
        return f"{url[:120]!r} is not a valid URL ({exc})"
    if parts.scheme.lower() not in WEB_SCHEMES:
        return f"{url[:120]!r} is not an http or https URL (scheme {parts.scheme[:20]!r})"
    if not parts.hostname:
        return f"{url[:120]!r} names no host"
    if parts.username is not None or parts.password is not None:
        return f"{url[:120]!r} carries a user name or password"
    return None


def same_origin(url: str, base_url: str) -> bool:
    """SSRF guard: ``url`` points at the scheme, host and port of ``base_url``."""
    a, b = urlsplit(url), urlsplit(base_url)
    try:
        return (a.scheme.lower(), a.hostname, a.port or _default_port(a.scheme)) == \
            (b.scheme.lower(), b.hostname, b.port or _default_port(b.scheme))
    except ValueError:
        return False


def store_url_of(zarr_store_url: str, base_url: str) -> str:
    """Real Gaia miners answer a path (``/forecasts/<name>.zarr``): it is joined to the miner's
    registered URL; an absolute URL is kept (``store_url_problem`` then applies to either)."""
    return urljoin(base_url.rstrip("/") + "/", zarr_store_url.strip()).rstrip("/")


def store_url_problem(zarr_store_url: str, base_url: str) -> str | None:
    """Why a store URL a miner answered is refused (None when it is a web URL on its endpoint)."""
    url = store_url_of(zarr_store_url, base_url)
    problem = url_problem(url)
    if problem:
        return f"store URL {problem}"
    if not same_origin(url, base_url):
        return f"store URL {url[:200]} is not on the miner's registered endpoint {base_url}"
    return None


def linkable(url: str | None, base_url: str) -> bool:
    """Display rule: a URL is shown as a link only when it is a web URL on the miner's endpoint."""
    return bool(url) and url_problem(url) is None and same_origin(url, base_url)

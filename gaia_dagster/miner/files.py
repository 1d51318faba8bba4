"""The reference miner's store files: ``/forecasts/{path}``, only with a valid JWT whose path scope
covers the path, never outside the forecasts directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jwt
from fastapi import Request
from fastapi.responses import JSONResponse, Response

if TYPE_CHECKING:
    from gaia_dagster.miner.app import MinerState


def _token_of(request: Request) -> str | None:
    """The JWT from ``Authorization: Bearer`` or, failing that, the ``token`` query parameter."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token")


def _in_scope(scope: str, path: str) -> bool:
    """The token's path must equal the requested path or be a whole-segment prefix of it."""
    scope = scope.strip("/")
    return path == scope or path.startswith(scope + "/")


def serve_forecast_file(state: MinerState, path: str, request: Request) -> Response:
    """A store file, only with a valid token whose scope covers it, never outside the store dir."""
    token = _token_of(request)
    if not token:
        return JSONResponse({"detail": "an access token is required"}, 401)
    try:
        claims = jwt.decode(token, state.settings.jwt_secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.PyJWTError as exc:
        return JSONResponse({"detail": f"invalid access token: {exc}"}, 401)
    if ".." in path.split("/") or not _in_scope(str(claims.get("file_path", "")), path):
        return JSONResponse({"detail": "the token does not cover this path"}, 403)
    root = state.forecasts_dir.resolve()
    try:
        target = (root / path).resolve()
        found = root in target.parents and target.is_file()
    except (ValueError, OSError):  # a NUL byte, an overlong name: a bad path is a 4xx, never a 500
        found = False
    if not found:
        return JSONResponse({"detail": "not found"}, 404)
    if request.method == "HEAD":
        return Response(status_code=200, headers={"content-length": str(target.stat().st_size)})
    return Response(target.read_bytes(), media_type="application/octet-stream")

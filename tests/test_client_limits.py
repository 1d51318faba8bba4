"""At most two requests in flight to any one miner, however many of its jobs are polled at once."""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn
from fastapi import FastAPI

from gaia_dagster.fleet import free_port
from gaia_dagster.resources.miner_client import MAX_IN_FLIGHT_PER_MINER, MinerClient


def counting_miner():  # noqa: ANN201
    """A loopback endpoint that records how many polls it serves at the same time."""
    app = FastAPI()
    state = {"now": 0, "peak": 0}

    @app.post("/weather-poll-job-status")
    async def poll() -> dict:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.2)
        state["now"] -= 1
        return {"status": "running_inference", "job_id": "j", "message": ""}

    return app, state


def serve(app: FastAPI) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


def test_polls_to_one_miner_are_capped_while_other_miners_proceed():
    (app_a, state_a), (app_b, state_b) = counting_miner(), counting_miner()
    (url_a, server_a, thread_a), (url_b, server_b, thread_b) = serve(app_a), serve(app_b)
    try:
        jobs = [(url_a, "hk-a", f"a{i}") for i in range(6)] + [(url_b, "hk-b", f"b{i}") for i in range(2)]
        started = time.perf_counter()
        results = MinerClient().poll_many(jobs, concurrency=32)
        elapsed = time.perf_counter() - started
    finally:
        server_a.should_exit = server_b.should_exit = True
        thread_a.join(timeout=10)
        thread_b.join(timeout=10)
    assert all(r.status == "running_inference" for r in results)
    assert state_a["peak"] == MAX_IN_FLIGHT_PER_MINER == 2 and state_b["peak"] == 2
    assert elapsed >= 0.55  # six polls of one miner, two at a time, 0.2 s each

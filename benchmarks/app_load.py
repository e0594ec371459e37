#!/usr/bin/env python
"""Load test of the web app: concurrent analysis requests from a second process over loopback.

``cardiolens serve`` runs in its own process on a free 127.0.0.1 port; this process uploads one real
record (a CinC 2017 ECG from ../shared/data, or the bundled simulated example with ``--example``),
then sends ``--requests`` analysis requests (``POST /api/records/{id}/analysis``) all at once, while
pinging ``GET /api/health`` every ``--ping-ms`` to see whether the event loop keeps answering during
the load. Every request is bounded by a timeout and the whole run by the request count; nothing is
sent anywhere but the loopback address of the server it started.

Reported: errors, p50 / p95 / max latency of the concurrent requests, the same request sent alone
(``serial``, the median of ``--serial`` runs: the peer for the ratio, measured in the same run), the
in-process time of the work itself (:func:`cardiolens.app.services.analyse`), and the health pings'
latency during the load.

Example:
    .venv/bin/python benchmarks/app_load.py
    .venv/bin/python benchmarks/app_load.py --example --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import REPO, unpacked, write_result  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log: Path, compute_threads: int) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115  kept open for the server's lifetime
    command = [sys.executable, "-m", "cardiolens.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen([*command, "--compute_threads", str(compute_threads)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"the server did not start; see {log}")


def percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64) * 1000  # ms
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
        "max_ms": round(float(a.max()), 1),
        "n": int(a.size),
    }


async def load(url: str, record_id: str, lead: str | None, n: int, ping_ms: float, timeout: float) -> dict:
    limits = httpx.Limits(max_connections=n + 2, max_keepalive_connections=n + 2)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        stop = asyncio.Event()
        pings: list[float] = []

        async def ping() -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                response = await client.get("/api/health")
                if response.status_code == 200:
                    pings.append(time.perf_counter() - t0)
                await asyncio.sleep(ping_ms / 1000)

        async def one() -> tuple[int, float, str]:
            t0 = time.perf_counter()
            try:
                response = await client.post(f"/api/records/{record_id}/analysis", json={"lead": lead})
                return response.status_code, time.perf_counter() - t0, ""
            except httpx.HTTPError as exc:
                return -1, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"

        pinger = asyncio.create_task(ping())
        await asyncio.sleep(0.2)  # pings before the load, for a baseline
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - t0
        stop.set()
        await pinger
    ok = [t for status, t, _ in results if status == 200]
    errors = [(status, why) for status, _, why in results if status != 200]
    return {"ok": ok, "errors": errors, "wall_s": wall, "pings": pings}


def measure(args: argparse.Namespace, compute_threads: int) -> dict:
    """One server with ``--compute_threads``: the request alone, the same work in process, then the load."""
    port = free_port()
    log = REPO / ".cache" / f"app_load_server_{compute_threads}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = start_server(port, log, compute_threads)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=args.timeout) as http:
            if args.example:
                record = http.post("/api/examples/simulated").json()
                data = "bundled simulated example (30 s, ECG II + PPG, 500 Hz)"
                hea = None
            else:
                folder = unpacked("cinc2017-dev.zip") / "training2017"
                hea = sorted(folder.glob("*.hea"))[0]
                mat = hea.with_suffix(".mat")
                files = [("files", (p.name, p.read_bytes())) for p in (hea, mat)]
                response = http.post("/api/records", files=files)
                response.raise_for_status()
                record = response.json()
                data = f"../shared/data/cinc2017-dev.zip: training2017/{hea.name} + {mat.name}"
            lead = record["default_lead"]
            http.post(f"/api/records/{record['id']}/analysis", json={"lead": lead}).raise_for_status()  # warm-up
            serial = []
            for _ in range(args.serial):
                t0 = time.perf_counter()
                http.post(f"/api/records/{record['id']}/analysis", json={"lead": lead}).raise_for_status()
                serial.append(time.perf_counter() - t0)
            analysis = http.post(f"/api/records/{record['id']}/analysis", json={"lead": lead}).json()
        # the work itself, in this process, through the same public function the endpoint calls
        from cardiolens.analysis import simulated_record
        from cardiolens.app import services
        from cardiolens.io import load_record

        rec = load_record(hea) if hea is not None else simulated_record()
        pool = services.ModelPool()
        services.analyse(rec, pool, lead)
        direct = []
        for _ in range(args.serial):
            t0 = time.perf_counter()
            services.analyse(rec, pool, lead)
            direct.append(time.perf_counter() - t0)

        run = asyncio.run(load(url, record["id"], lead, args.requests, args.ping_ms, args.timeout))
    finally:
        server.terminate()
        server.wait(timeout=10)

    concurrent = percentiles(run["ok"]) if run["ok"] else {}
    serial_ms = statistics.median(serial) * 1000
    return {
        "data": data,
        "record": {k: record[k] for k in ("name", "fs", "leads", "samples", "duration_s")},
        "request": f"POST /api/records/{{id}}/analysis with lead {lead}",
        "models_in_analysis": {
            "rhythm": analysis["rhythm"].get("model") if analysis["rhythm"].get("ok") else "unavailable",
            "beats": analysis["beat_model"].get("model") if analysis["beat_model"].get("ok") else "unavailable",
        },
        "server": f"cardiolens serve --compute_threads {compute_threads} (uvicorn, 1 worker, torch threads 1), "
        "a second process on 127.0.0.1",
        "concurrent": {
            "requests": args.requests,
            "ok": len(run["ok"]),
            "errors": len(run["errors"]),
            "error_samples": run["errors"][:5],
            "wall_s": round(run["wall_s"], 3),
            "throughput_per_s": round(len(run["ok"]) / run["wall_s"], 2),
            **concurrent,
        },
        "serial_ms": round(serial_ms, 1),
        "in_process_ms": round(statistics.median(direct) * 1000, 1),
        "p50_over_serial": round(concurrent.get("p50_ms", float("nan")) / serial_ms, 2),
        "health_during_load": percentiles(run["pings"]) if run["pings"] else {},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50, help="concurrent analysis requests")
    parser.add_argument("--serial", type=int, default=10, help="requests sent one at a time (the peer)")
    parser.add_argument("--ping-ms", type=float, default=50.0, help="interval of the health pings during the load")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before one request counts as failed")
    parser.add_argument("--example", action="store_true", help="use the bundled simulated record, not CinC 2017")
    parser.add_argument(
        "--compute-threads",
        type=int,
        nargs="+",
        default=[2, 40],
        help="one server per value of serve --compute_threads (2: the default; 40: Starlette's whole thread pool)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "app_load.json")
    args = parser.parse_args()

    runs = {str(n): measure(args, n) for n in args.compute_threads}
    write_result({"settings": vars(args) | {"out": str(args.out)}, "runs": runs}, args.out)
    failed = False
    for n, result in runs.items():
        c = result["concurrent"]
        print(
            f"compute_threads {n}: {c['ok']}/{c['requests']} ok, {c['errors']} errors; p50 {c.get('p50_ms')} ms, "
            f"p95 {c.get('p95_ms')} ms, max {c.get('max_ms')} ms; alone {result['serial_ms']} ms (in process "
            f"{result['in_process_ms']} ms); health during load p50 {result['health_during_load'].get('p50_ms')} ms, "
            f"p95 {result['health_during_load'].get('p95_ms')} ms"
        )
        failed = failed or bool(c["errors"])
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()

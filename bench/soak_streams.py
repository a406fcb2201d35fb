"""The client under load: ``AsyncClient`` with 1,000 (and more) concurrent streams in one process.

Run ``python bench/soak_streams.py`` (1, 1,000, 2,000 and 4,000 streams) or ``--quick`` (1 and 200),
``--streams 500 8000`` for other loads; ``--json`` prints the rows as JSON lines. The server is a
replay server in a process of its own: it answers every request with the bytes of a recorded Anthropic
stream (``../shared/recorded/anthropic_tool_use.txt``), one SSE event every ``--interval`` ms, so the
client is what is measured, not a simulator. Every stream starts at once (``asyncio.gather``) on one
client whose pool holds one connection per stream.

Reported per load: the share of streams that completed; events/s; the client's CPU per event (user +
system, the whole process) next to the CPU per event of decoding the same bytes with no I/O at all
(``wire.decoder`` + ``Accumulator``, the single-stream decode bench) and their ratio; the added
latency p50 / p95 (from starting the stream to its last event, minus the server's schedule for the
recorded events: connecting, queueing and decoding under load); peak RSS growth per stream; peak open
file descriptors.
A load that does not complete names what broke (the most frequent error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT.parent / "shared" / "recorded" / "anthropic_tool_use.txt"


def events_of(path: Path) -> list[bytes]:
    """The recorded stream, one SSE event (with its blank line) each."""
    text = path.read_bytes().replace(b"\r\n", b"\n")
    return [part + b"\n\n" for part in text.split(b"\n\n") if part.strip()]


# -- the replay server (its own process) ---------------------------------------------------------------


async def _replay(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, events: list[bytes], gap: float
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if length:
            await reader.readexactly(length)
        start = time.monotonic_ns()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        for k, event in enumerate(events):
            delay = (start + int(k * gap * 1e9) - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(event)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def serve(port_file: str, gap: float) -> None:
    events = events_of(RECORDED)

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _replay(r, w, events, gap), "127.0.0.1", 0, backlog=8192, limit=1 << 16
        )
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- the client ----------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def decode_cpu_per_event(events: list[bytes], rounds: int = 300) -> float:
    """Seconds of CPU per event to decode the recorded bytes with no I/O (one stream at a time)."""
    from midstream import Accumulator, wire

    body = b"".join(events)
    count, began = 0, time.process_time()
    for _ in range(rounds):
        decoder, acc = wire.decoder("anthropic"), Accumulator()
        for event in [*decoder.feed(body), *decoder.close()]:
            acc.feed(event)
            count += 1
    return (time.process_time() - began) / max(1, count)


async def load(url: str, n: int, gap: float, last_index: int, deadline: float = 240.0) -> dict[str, Any]:
    from midstream.client.stream import AsyncClient
    from midstream.client.timeouts import Timeouts

    peak = {"fds": 0, "rss": 0}
    base_rss = rss_kib()

    async def sample() -> None:
        while True:
            peak["fds"] = max(peak["fds"], len(os.listdir("/proc/self/fd")))
            peak["rss"] = max(peak["rss"], rss_kib())
            await asyncio.sleep(0.05)

    timeouts = Timeouts(connect=30.0, pool=60.0)
    async with AsyncClient(
        "anthropic", api_key="soak", base_url=url, model="m", max_connections=n, timeouts=timeouts
    ) as client:

        async def one() -> tuple[bool, int, float | None, str]:
            events, began = 0, time.monotonic_ns()
            try:
                async with client.stream("soak", max_tokens=100) as stream:
                    async for _ in stream:
                        events += 1
                    done = time.monotonic_ns()
                added = (done - began) / 1e6 - last_index * gap * 1e3
                return stream.message.terminal == "completed", events, added, ""
            except Exception as exc:
                return False, events, None, f"{type(exc).__name__}: {str(exc)[:80]}"

        await one()  # warm up: imports and first-use costs are not the load's
        sampler = asyncio.create_task(sample())
        cpu, wall = time.process_time(), time.perf_counter()
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        done, late = await asyncio.wait(tasks, timeout=deadline)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        sampler.cancel()
        for task in late:
            task.cancel()
        results = [t.result() for t in done]
        results += [(False, 0, None, f"still streaming after {deadline:g} s")] * len(late)
    ok = [r for r in results if r[0]]
    events = sum(r[1] for r in results)
    added = [r[2] for r in ok if r[2] is not None]
    errors = Counter(r[3] for r in results if not r[0])
    return {
        "streams": n,
        "completed": len(ok) / n,
        "events": events,
        "events_per_s": events / wall if wall else math.nan,
        "cpu_us_per_event": cpu / events * 1e6 if events else math.nan,
        "cpu_s": cpu,
        "wall_s": wall,
        "added_ms_p50": percentile(added, 0.5),
        "added_ms_p95": percentile(added, 0.95),
        "rss_kib_per_stream": max(0, peak["rss"] - base_rss) / n,
        "peak_fds": peak["fds"],
        "broke": errors.most_common(1)[0][0] if errors else "",
    }


def run_load(url: str, n: int, gap: float) -> dict[str, Any]:
    """One load in a fresh process (so RSS and CPU are its own)."""
    code = (
        "import asyncio, json, sys; sys.path.insert(0, sys.argv[1]); import soak_streams as s; "
        "args = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]); "
        "print(json.dumps(asyncio.run(s.load(*args))))"
    )
    last = len(events_of(RECORDED)) - 1
    argv = [sys.executable, "-c", code, str(Path(__file__).parent), url, str(n), str(gap), str(last)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"streams": n, "completed": 0.0, "broke": "the client process did not finish in 600 s"}
    if done.returncode != 0:
        return {"streams": n, "completed": 0.0, "broke": done.stderr.strip().splitlines()[-1][:120]}
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 1000, 2000, 4000])
    parser.add_argument("--quick", action="store_true", help="1 and 200 streams (the version make test runs)")
    parser.add_argument("--interval", type=float, default=10.0, help="ms between the server's events")
    parser.add_argument("--json", action="store_true", help="one JSON object a load")
    args = parser.parse_args()
    loads = [1, 200] if args.quick else args.streams
    gap = args.interval / 1000
    port_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"soak-{os.getpid()}.port"
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file), str(gap)])
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the replay server did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        decode = decode_cpu_per_event(events_of(RECORDED))
        rows = [run_load(url, n, gap) for n in loads]
    finally:
        server.terminate()
        server.wait()
        port_file.unlink(missing_ok=True)
    for row in rows:
        if "cpu_us_per_event" in row:
            row["decode_us_per_event"] = decode * 1e6
            row["cpu_vs_decode"] = row["cpu_us_per_event"] / (decode * 1e6)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    source = f"{RECORDED.name}, {args.interval:g} ms/event"
    print(f"AsyncClient, concurrent streams against a replay server ({source})")
    print(f"decoding the same bytes with no I/O: {decode * 1e6:.1f} us CPU per event")
    head = (
        "streams  completed  events/s  CPU us/event  x decode  added p50/p95 ms  RSS KiB/stream  fds   broke"
    )
    print(head)
    for r in rows:
        if "cpu_us_per_event" not in r:
            print(f"{r['streams']:>7}  {r['completed']:>9.1%}  {r['broke']}")
            continue
        print(
            f"{r['streams']:>7}  {r['completed']:>9.1%}  {r['events_per_s']:>8.0f}"
            f"  {r['cpu_us_per_event']:>12.1f}"
            f"  {r['cpu_vs_decode']:>8.1f}  {r['added_ms_p50']:>7.1f}/{r['added_ms_p95']:<8.1f}"
            f"  {r['rss_kib_per_stream']:>14.1f}  {r['peak_fds']:>4}  {r['broke']}"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], float(sys.argv[3]))
    else:
        main()

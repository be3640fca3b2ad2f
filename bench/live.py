"""Benchmark: the live hub's fan-out to many connected viewers (in-process, no network).

Measured in the same run, with ``--subscribers`` viewers (half reps of one
owner, half of another, a few admins) subscribed to ``activity``:

* ``cpu_us_per_event``: process CPU time per published event, fanned out to
  every subscriber that may see it (filter + enqueue), while consumers drain
  their queues;
* ``cpu_us_per_delivery``: the same per delivered copy;
* ``publish_to_dequeue_p50_ms`` / ``p99_ms``: from ``publish()`` in a worker
  thread (as a webhook route's transaction thread would call it) to a
  subscriber's task holding the event, at ``--rate`` events per second.

The last line of output is one JSON object with these keys.
Run: ``.venv/bin/python bench/live.py [--subscribers 200] [--events 2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time

from touchflow.domain.access import Viewer
from touchflow.entrypoints.api.live import LiveHub


async def run(subscribers: int, n_events: int, rate: float) -> dict[str, float]:
    hub = LiveHub(queue_size=4096, replay=1000)
    owners = ["ana@x.example", "ben@x.example"]
    subs = []
    for i in range(subscribers):
        if i % 20 == 0:
            viewer = Viewer(f"admin{i}@x.example", "admin", None)
        else:
            o = owners[i % 2]
            viewer = Viewer(o, "rep", frozenset({o}))
        subs.append(hub.subscribe(viewer, ["activity"])[0])
    latencies: list[float] = []

    async def consume(sub: object, record: bool) -> None:
        q = sub.queue  # type: ignore[attr-defined]
        while True:
            ev = await q.get()
            if ev is None:
                return
            if record:
                latencies.append(time.perf_counter() - ev.data["t"])

    tasks = [asyncio.create_task(consume(s, i == 1)) for i, s in enumerate(subs)]
    cpu0, delivered0 = time.process_time(), hub.stats.delivered

    def producer() -> None:
        for k in range(n_events):
            hub.publish(
                "activity", "activity", {"k": k, "t": time.perf_counter()}, owner=owners[k % 2]
            )
            time.sleep(1 / rate)

    thread = threading.Thread(target=producer)
    thread.start()
    while thread.is_alive() or any(not s.queue.empty() for s in subs):
        await asyncio.sleep(0.005)
    thread.join()
    cpu = time.process_time() - cpu0
    delivered = hub.stats.delivered - delivered0
    for s in subs:
        s.queue.put_nowait(None)
    await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "subscribers": subscribers,
        "events": n_events,
        "rate_per_s": rate,
        "deliveries": delivered,
        "cpu_us_per_event": round(cpu / n_events * 1e6, 1),
        "cpu_us_per_delivery": round(cpu / max(delivered, 1) * 1e6, 2),
        "publish_to_dequeue_p50_ms": round(statistics.median(latencies) * 1e3, 3),
        "publish_to_dequeue_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1e3, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500.0, help="events per second offered")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.subscribers, args.events, args.rate))))


if __name__ == "__main__":
    main()

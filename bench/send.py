"""Benchmark: SendGrid sends per second through SendgridEmailSender, beside a sequential baseline.

Everything runs in this one process: the real sendgrid library sends over real
HTTP to the local stand-in (``tests.support.standins.sendgrid_api``), which
validates every body against SendGrid's spec and answers after ``--latency-ms``
(default 50 ms, a plausible round trip to api.sendgrid.com). The stand-in
shares the interpreter (and its GIL) with the sender, so the numbers are a
floor for the sender alone.

Measured in the same run:

* ``msgs_per_s``: ``--n`` messages (default 2,000) in one ``send_batch`` at
  ``--concurrency`` (default: ``SendgridSettings().concurrency``);
* ``sequential_msgs_per_s``: the baseline, one request at a time
  (concurrency 1), on ``--sequential-n`` messages (default 100);
* a sweep over ``--sweep`` concurrencies on ``--sweep-n`` messages each, for the table;
* ``cpu_ms_per_msg``: process CPU time per message in the main run (client and
  stand-in together), which bounds what more concurrency can buy.

The last line of output is one JSON object with these keys.
Run: ``.venv/bin/python bench/send.py [--n 2000] [--concurrency 16] [--latency-ms 50]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.standins.sendgrid_api import DEFAULT_API_KEY, SendgridStandin  # noqa: E402
from touchflow.adapters.sendgrid.email_sender import SendgridEmailSender  # noqa: E402
from touchflow.ports import OutboundEmail  # noqa: E402
from touchflow.settings import SendgridSettings  # noqa: E402


def make_messages(n: int, offset: int = 0) -> list[OutboundEmail]:
    """``n`` realistic touches: threading, one-click unsubscribe, categories."""
    return [
        OutboundEmail(
            touch_key=f"{i}-step-2-1",
            message_id=f"<tf.{i}.bench@mail.acme.test>",
            from_addr="sam@touchflow.example",
            from_name="Sam Rivera",
            to_addr=f"prospect{i}@example.test",
            subject="Re: quick question about your pipeline",
            text=(
                f"Hi prospect {i},\n\nFollowing up on my note from last week: "
                "would a 20-minute call on Thursday work?\n\nBest,\nSam\n"
            ),
            in_reply_to=f"<tf.{i}.first@mail.acme.test>",
            references=(f"<tf.{i}.first@mail.acme.test>",),
            list_unsubscribe_url=f"https://app.touchflow.example/u/{i}-token",
            list_unsubscribe_mailto="unsubscribe@touchflow.example",
            categories=("enterprise-outbound", "step-2"),
        )
        for i in range(offset, offset + n)
    ]


def run(standin: SendgridStandin, n: int, concurrency: int, offset: int) -> dict[str, float]:
    """Send ``n`` messages in one batch at ``concurrency``; rate, failures and CPU per message."""
    messages = make_messages(n, offset)
    before = len(standin.messages)
    with SendgridEmailSender(
        DEFAULT_API_KEY, host=standin.url, timeout_s=10.0, concurrency=concurrency
    ) as sender:
        sender.send_batch(make_messages(min(concurrency, 8), offset + n))  # start the threads
        before = len(standin.messages)
        cpu0, t0 = time.process_time(), time.perf_counter()
        results = sender.send_batch(messages)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} failed, first: {failed[0].error}", file=sys.stderr)
    accepted = len(standin.messages) - before
    assert accepted == n - len(failed), (accepted, n, len(failed))
    return {
        "n": n,
        "concurrency": concurrency,
        "seconds": elapsed,
        "msgs_per_s": (n - len(failed)) / elapsed,
        "failed": len(failed),
        "cpu_ms_per_msg": cpu * 1000 / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=SendgridSettings().concurrency)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--sequential-n", type=int, default=100)
    ap.add_argument(
        "--sweep", default="4,8,32", help="extra concurrencies for the table ('' for none)"
    )
    ap.add_argument("--sweep-n", type=int, default=500)
    args = ap.parse_args()

    rows: list[dict[str, float]] = []
    with SendgridStandin(latency_s=args.latency_ms / 1000) as standin:
        baseline = run(standin, args.sequential_n, 1, offset=0)
        rows.append(baseline)
        offset = 100_000
        for c in [int(x) for x in args.sweep.split(",") if x.strip()]:
            if c != args.concurrency:
                rows.append(run(standin, args.sweep_n, c, offset=offset))
                offset += 100_000
        main_run = run(standin, args.n, args.concurrency, offset=offset)
        rows.append(main_run)
        rejected = standin.rejected
    assert rejected == 0, f"the stand-in rejected {rejected} bodies"

    latency_s = args.latency_ms / 1000
    print(f"SendGrid Mail Send via stand-in, {args.latency_ms:g} ms latency per request")
    header = ("concurrency", "messages", "seconds", "msgs/s", "ceiling", "cpu ms/msg")
    print("{:>11} {:>9} {:>8} {:>8} {:>8} {:>10}".format(*header))
    for row in sorted(rows, key=lambda r: r["concurrency"]):
        mark = "  <- configured" if row is main_run else "  <- baseline" if row is baseline else ""
        ceiling = row["concurrency"] / latency_s if latency_s else float("inf")
        print(
            f"{row['concurrency']:>11.0f} {row['n']:>9.0f} {row['seconds']:>8.2f} "
            f"{row['msgs_per_s']:>8.1f} {ceiling:>8.0f} {row['cpu_ms_per_msg']:>10.2f}{mark}"
        )
    print("ceiling = concurrency / latency: what the requests in flight allow at best")
    results: dict[str, Any] = {
        "msgs_per_s": round(main_run["msgs_per_s"], 1),
        "concurrency": args.concurrency,
        "n": args.n,
        "sequential_msgs_per_s": round(baseline["msgs_per_s"], 1),
        "sequential_n": args.sequential_n,
        "vs_sequential_x": round(main_run["msgs_per_s"] / baseline["msgs_per_s"], 1),
        "latency_ms": args.latency_ms,
        "cpu_ms_per_msg": round(main_run["cpu_ms_per_msg"], 2),
        "failed": int(main_run["failed"]),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()

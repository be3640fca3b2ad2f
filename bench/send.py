"""Benchmark: sends per second through SendgridEmailSender and SmtpEmailSender, beside baselines.

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
  stand-in together), which bounds what more concurrency can buy;
* ``library_close_msgs_per_s``: the same messages at the same concurrency
  through sendgrid-python's own client (``SendGridAPIClient.send``, urllib,
  ``Connection: close``: a new TCP connection per message), the design before
  keep-alive; ``keepalive_connections`` / ``library_close_connections``: TCP
  connections the stand-in accepted for each;
* SMTP to the local sink (aiosmtpd) answering each message's data after
  ``--smtp-delay-ms`` (default 20 ms), ``--smtp-n`` messages (default 400):
  ``smtp_raw_floor_msgs_per_s`` (the same messages built the same way and
  sent with plain ``smtplib.sendmail`` over one connection),
  ``smtp_single_msgs_per_s`` (the sender with ``pool_size=1``) and
  ``smtp_pool_msgs_per_s`` (``pool_size`` 4, the default).

The last line of output is one JSON object with these keys.
Run: ``.venv/bin/python bench/send.py [--n 2000] [--concurrency 16] [--latency-ms 50]``
``[--smtp-n 400] [--smtp-delay-ms 20]``.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sendgrid import SendGridAPIClient  # noqa: E402

from tests.support.standins.sendgrid_api import DEFAULT_API_KEY, SendgridStandin  # noqa: E402
from touchflow.adapters.sendgrid.email_sender import SendgridEmailSender, build_mail  # noqa: E402
from touchflow.adapters.smtp.email_sender import (  # noqa: E402
    DEFAULT_POOL_SIZE,
    MESSAGE_POLICY,
    SmtpEmailSender,
)
from touchflow.adapters.smtp.sink import LocalSmtpSink  # noqa: E402
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


def run_library(
    standin: SendgridStandin, n: int, concurrency: int, offset: int
) -> dict[str, float]:
    """The design before keep-alive: sendgrid-python's client, one connection per message."""
    messages = make_messages(n, offset)
    local = threading.local()

    def send(msg: OutboundEmail) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = SendGridAPIClient(api_key=DEFAULT_API_KEY, host=standin.url)
        return int(client.send(build_mail(msg)).status_code)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, make_messages(min(concurrency, 8), offset + n)))  # start the threads
        before, conns = len(standin.messages), standin.connections
        cpu0, t0 = time.process_time(), time.perf_counter()
        statuses = list(pool.map(send, messages))
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    assert all(200 <= st < 300 for st in statuses)
    assert len(standin.messages) - before == n
    return {
        "msgs_per_s": n / elapsed,
        "cpu_ms_per_msg": cpu * 1000 / n,
        "connections": standin.connections - conns,
    }


def run_smtp(n: int, delay_s: float, pool_size: int | None) -> dict[str, float]:
    """``n`` messages to a sink answering after ``delay_s``; ``pool_size`` None: raw smtplib."""
    messages = make_messages(n, 500_000)
    with LocalSmtpSink(data_delay_s=delay_s) as sink:
        if pool_size is None:
            t0 = time.perf_counter()
            with smtplib.SMTP(sink.host, sink.port, local_hostname="bench.local") as conn:
                for m in messages:
                    raw = SmtpEmailSender.build_message(m).as_bytes(MESSAGE_POLICY)
                    conn.sendmail(m.from_addr, [m.to_addr], raw)
            elapsed = time.perf_counter() - t0
            ok = n
        else:
            with SmtpEmailSender(
                sink.host, sink.port, local_hostname="bench.local", pool_size=pool_size
            ) as sender:
                t0 = time.perf_counter()
                ok = sum(r.ok for r in sender.send_batch(messages))
                elapsed = time.perf_counter() - t0
        assert sink.count == n == ok, (sink.count, n, ok)
        return {"msgs_per_s": n / elapsed, "connections": sink.connection_count}


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
    ap.add_argument("--smtp-n", type=int, default=400)
    ap.add_argument("--smtp-delay-ms", type=float, default=20.0)
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
        conns = standin.connections
        main_run = run(standin, args.n, args.concurrency, offset=offset)
        keepalive_connections = standin.connections - conns
        rows.append(main_run)
        library = run_library(standin, args.n, args.concurrency, offset=offset + 100_000)
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
    print(
        f"sendgrid library (Connection: close) at {args.concurrency}: "
        f"{library['msgs_per_s']:.1f} msgs/s, {library['cpu_ms_per_msg']:.2f} cpu ms/msg, "
        f"{library['connections']:.0f} connections; keep-alive: {keepalive_connections} connections"
    )
    delay = args.smtp_delay_ms / 1000
    smtp_floor = run_smtp(args.smtp_n, delay, None)
    smtp_single = run_smtp(args.smtp_n, delay, 1)
    smtp_pool = run_smtp(args.smtp_n, delay, DEFAULT_POOL_SIZE)
    print(f"SMTP to the sink, {args.smtp_delay_ms:g} ms before each final reply:")
    for label, row in (
        ("raw smtplib, 1 connection", smtp_floor),
        ("sender, pool_size 1", smtp_single),
        (f"sender, pool_size {DEFAULT_POOL_SIZE}", smtp_pool),
    ):
        print(f"  {label:<28} {row['msgs_per_s']:>8.1f} msgs/s  ({row['connections']:.0f} conn)")
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
        "keepalive_connections": keepalive_connections,
        "library_close_msgs_per_s": round(library["msgs_per_s"], 1),
        "library_close_cpu_ms_per_msg": round(library["cpu_ms_per_msg"], 2),
        "library_close_connections": int(library["connections"]),
        "smtp_delay_ms": args.smtp_delay_ms,
        "smtp_raw_floor_msgs_per_s": round(smtp_floor["msgs_per_s"], 1),
        "smtp_single_msgs_per_s": round(smtp_single["msgs_per_s"], 1),
        "smtp_pool_msgs_per_s": round(smtp_pool["msgs_per_s"], 1),
        "smtp_pool_size": DEFAULT_POOL_SIZE,
        "smtp_pool_vs_single_x": round(smtp_pool["msgs_per_s"] / smtp_single["msgs_per_s"], 2),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()

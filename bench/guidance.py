"""Benchmark: live call guidance end to end, from a signed Twilio callback to a card on a screen.

A real ``touchflow serve`` (uvicorn, its own process) over a fresh database, with a
``config/guidance.yaml`` of ``--trackers`` trackers in five languages (the generator of
``bench/guidance_matching.py``: 3-6 phrases per language, 15 % with an exclusion; every
tracker has a card, no cooldown or maximum, so every hit is a card). ``--calls`` concurrent
calls each send ``--rate`` final segments per second (alternating tracks, round-robin
languages, a third mentioning a tracker phrase) for ``--seconds``, as signed
``POST /webhooks/twilio/transcription`` callbacks (the real webhook path: signature, store,
guidance session, hub). Each call has a screen: an SSE client on
``GET /live/stream?topic=call:<sid>`` reading its stream.

Reported (the last line is one JSON object):

* ``card_p50_ms`` / ``card_p99_ms``: from the callback being sent (loopback: received) to
  its card read off the call's stream; ``transcript_p50_ms`` / ``_p99_ms`` the same for
  every segment's transcript event;
* ``segments_per_cpu_s``: segments handled per CPU second of the server process (user +
  system, ``/proc``): segments per second per core; ``server_cpu_util`` the cores it used;
* ``automaton_us`` / ``regex_us`` / ``ratio``: matching cost per segment in this run, on the
  same trackers and segment texts, the automaton beside the loop of compiled regular
  expressions (both from ``bench/guidance_matching.py``);
* ``recogniser_rtf``: the offline recogniser's CPU seconds per second of audio, on speech
  espeak-ng and sox make (as ``tests/api/test_media_stream.py`` does).

Run: ``.venv/bin/python bench/guidance.py [--seconds 60] [--calls 200] [--rate 2]
[--database-url postgresql://...]`` (default: ``$TOUCHFLOW_TEST_POSTGRES_URL`` in a fresh
schema, else a SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from guidance_matching import (  # noqa: E402
    LANGUAGES,
    RegexLoop,
    make_rules,
    make_segments,
    per_segment_us,
)
from speed_to_lead import (  # noqa: E402
    PRODUCTION_SENDER_ENV,
    _cpu_s,
    _free_port,
    _fresh_schema,
    _percentile,
    _wait,
)

from touchflow.domain.guidance import PhraseMatcher, Stemmers  # noqa: E402
from touchflow.store.db import make_engine, upgrade  # noqa: E402

API_KEY = "guidance-bench-key"
TOKEN = "guidance-bench-twilio-token"
PATH = "/webhooks/twilio/transcription"
LANG_CODES = {"en": "en-US", "de": "de-DE", "fr": "fr-FR", "es": "es-ES", "fa": "fa-IR"}


def guidance_yaml(rules: list[Any]) -> str:
    trackers: dict[str, Any] = {}
    for r in rules:
        t = trackers.setdefault(
            r.tracker,
            {"said_by": "anyone", "card": r.tracker, "cooldown_s": 0, "phrases": {}},
        )
        key = "exclude" if r.exclude else "phrases"
        t.setdefault(key, {}).setdefault(r.language, []).append(r.phrase)
    cards = {name: {"title": f"Card {name}", "text": f"**{name}**: say the thing."}
             for name in trackers}  # fmt: skip
    return yaml.safe_dump(
        {"match_all_languages": False, "trackers": trackers, "cards": cards},
        allow_unicode=True,
        sort_keys=False,
    )


def matching_cost(rules: list[Any], segments: list[tuple[str, str]]) -> dict[str, float]:
    matcher = PhraseMatcher(rules)
    regex = RegexLoop(rules, Stemmers())
    sample = segments[:2000]
    for lang, text in sample:  # warm both memos, as a few seconds into a call
        matcher.match(text, [lang])
        regex.match(text, lang)
    automaton = per_segment_us(lambda lang, text: matcher.match(text, [lang]), sample, 3)
    loop = per_segment_us(lambda lang, text: regex.match(text, lang), sample, 1)
    return {"automaton_us": automaton, "regex_us": loop, "ratio": loop / automaton}


def recogniser_rtf() -> float:
    from datetime import UTC, datetime

    from tests.support.speech import media_messages, say_mulaw
    from touchflow.adapters.speech import MediaStreamTranscriber, PocketsphinxRecognizer

    audio = say_mulaw("we already use competitor acme", "what is the price",
                      "can you send me a proposal")  # fmt: skip
    reader = MediaStreamTranscriber(PocketsphinxRecognizer, lambda: datetime.now(UTC))
    reader.message({"event": "start", "start": {"callSid": "CAbench", "customParameters": {}}})
    messages = [json.loads(m) for m in media_messages(audio, "outbound")]
    reader.message(messages[0])  # loads the model
    cpu = time.process_time()
    for m in messages[1:]:
        reader.message(m)
    reader.finish(stopped=True)
    return (time.process_time() - cpu) / reader.audio_seconds


class Load:
    def __init__(self, base: str, calls: int, rate: float, seconds: float,
                 texts: list[tuple[str, str]]) -> None:  # fmt: skip
        self.base = base
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.sids = [f"CA{n:032x}" for n in range(calls)]
        self.rate = rate
        self.seconds = seconds
        self.texts = texts
        self.validator = RequestValidator(TOKEN)
        self.sent: dict[tuple[str, str, int], float] = {}
        self.card_ms: list[float] = []
        self.transcript_ms: list[float] = []
        self.cards = 0
        self.errors = 0
        self.posted = 0
        self.connected = 0

    def _form(self, sid: str, event: str, **fields: Any) -> dict[str, str]:
        form = {
            "AccountSid": "AC" + "0" * 32,
            "CallSid": sid,
            "TranscriptionSid": "GT" + sid[2:],
            "TranscriptionEvent": event,
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
        }
        form.update({k: str(v) for k, v in fields.items()})
        return form

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    async def _post(self, conn: list[Any], form: dict[str, str]) -> None:
        """One keep-alive POST on the call's own connection (a minimal HTTP/1.1 client: the
        load generator shares the machine, and httpx cost more CPU than the server)."""
        sig = self.validator.compute_signature(self.base + PATH, form)
        body = urlencode(form).encode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {sig}\r\n\r\n"
        ).encode()
        try:
            if not conn:
                conn.extend(await self._open())
            reader, writer = conn
            writer.write(head + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if status != 204:
                self.errors += 1
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            self.errors += 1
            conn.clear()
        self.posted += 1

    async def screen(self, sid: str, stop: asyncio.Event) -> None:
        """A screen: the call's SSE stream read line by line (chunk sizes are skipped)."""
        reader, writer = await self._open()
        writer.write(
            (
                f"GET /live/stream?topic=call%3A{sid} HTTP/1.1\r\n"
                f"Host: {self.host}:{self.port}\r\nX-API-Key: {API_KEY}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
        )
        kind = ""
        try:
            while not stop.is_set():
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"retry:"):
                    self.connected += 1
                elif line.startswith(b"event: "):
                    kind = line[7:].strip().decode()
                elif line.startswith(b"data: ") and kind in ("card", "transcript"):
                    now = time.perf_counter()
                    data = json.loads(line[6:])
                    if kind == "card":
                        _, _tracker, track, seq = data["key"].rsplit(":", 3)
                        at = self.sent.get((sid, track, int(seq)))
                        self.cards += 1
                        if at is not None:
                            self.card_ms.append((now - at) * 1000)
                    else:
                        at = self.sent.get((sid, data["track"], data["seq"]))
                        if at is not None:
                            self.transcript_ms.append((now - at) * 1000)
        finally:
            writer.close()

    async def call(self, n: int, t0: float) -> None:
        sid = self.sids[n]
        interval = 1.0 / self.rate
        rnd = random.Random(n)
        seqs = {"inbound_track": 0, "outbound_track": 0}
        conn: list[Any] = []
        i = 0
        due = t0 + rnd.random() * interval
        while due < t0 + self.seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            track = ("outbound_track", "inbound_track")[i % 2]
            seqs[track] += 1
            lang, text = self.texts[(n * 7919 + i) % len(self.texts)]
            form = self._form(
                sid, "transcription-content", Track=track, SequenceId=seqs[track],
                LanguageCode=LANG_CODES[lang], Final="true", Stability="0.99",
                TranscriptionData=json.dumps({"transcript": text, "confidence": 0.9}),
            )  # fmt: skip
            self.sent[(sid, track, seqs[track])] = time.perf_counter()
            await self._post(conn, form)
            i += 1
            due += interval
        if conn:
            conn[1].close()

    async def run(self) -> None:
        for sid in self.sids:
            await self._post([], self._form(sid, "transcription-started", LanguageCode="en-US"))
        stop = asyncio.Event()
        readers = [asyncio.create_task(self.screen(s, stop)) for s in self.sids]
        while self.connected < len(self.sids):
            await asyncio.sleep(0.05)
        self.posted = 0
        t0 = time.perf_counter()
        await asyncio.gather(*(self.call(n, t0) for n in range(len(self.sids))))
        self.wall = time.perf_counter() - t0
        await asyncio.sleep(1.0)  # the last cards in flight
        stop.set()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--trackers", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--rate", type=float, default=2.0, help="segments per second per call")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--database-url", default=os.environ.get("TOUCHFLOW_TEST_POSTGRES_URL"))
    ap.add_argument("--profile", help="run the server under py-spy, raw stacks to this file")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    rules = make_rules(args.trackers, rnd)
    texts = make_segments(4000, rules, rnd)
    tmp = Path(tempfile.mkdtemp(prefix="touchflow-guidance-"))
    config = tmp / "config"
    config.mkdir()
    (config / "guidance.yaml").write_text(guidance_yaml(rules), encoding="utf-8")
    db = _fresh_schema(args.database_url) if args.database_url else f"sqlite:///{tmp / 'g.db'}"
    upgrade(make_engine(db))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "TOUCHFLOW_DATABASE_URL": db,
        "TOUCHFLOW_API_KEY": API_KEY,
        "TOUCHFLOW_CONFIG_DIR": str(config),
        "TOUCHFLOW_PUBLIC_URL": base,
        "TOUCHFLOW_TWILIO__AUTH_TOKEN": TOKEN,
        "TOUCHFLOW_UNSUBSCRIBE_SECRET": "guidance-bench-secret",
        "TOUCHFLOW_AUTH__SESSION_SECRET": "guidance-bench-session-secret",
        **PRODUCTION_SENDER_ENV,
    }
    log = (tmp / "server.log").open("w")
    command = [sys.executable, "-m", "touchflow", "serve", "--no-access-log",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    if args.profile:
        spy = str(Path(sys.executable).parent / "py-spy")
        command = [spy, "record", "--format", "raw", "-o", args.profile, "--", *command]
    server = subprocess.Popen(
        command,
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait(f"{base}/healthz")
        load = Load(base, args.calls, args.rate, args.seconds, texts)
        cpu0, box0, wall0 = _cpu_s(server.pid), _cpu_s(), time.perf_counter()
        client_cpu0 = time.process_time()
        asyncio.run(load.run())
        cpu = _cpu_s(server.pid) - cpu0
        wall = time.perf_counter() - wall0
        box = _cpu_s() - box0
        client_cpu = time.process_time() - client_cpu0
    finally:
        server.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
        server.wait(30)
        log.close()
    cost = matching_cost(rules, texts)
    try:
        rtf: float | None = recogniser_rtf()
    except Exception as exc:  # espeak-ng / sox missing: `make test-services` installs them
        print(f"recogniser not measured: {exc}")
        rtf = None
    segments = load.posted
    result = {
        "trackers": args.trackers,
        "languages": len(LANGUAGES),
        "calls": args.calls,
        "rate_per_call": args.rate,
        "seconds": args.seconds,
        "database": db.split(":", 1)[0],
        "segments": segments,
        "errors": load.errors,
        "cards": load.cards,
        "card_p50_ms": round(_percentile(load.card_ms, 0.5), 1) if load.card_ms else None,
        "card_p99_ms": round(_percentile(load.card_ms, 0.99), 1) if load.card_ms else None,
        "transcript_p50_ms": round(_percentile(load.transcript_ms, 0.5), 1),
        "transcript_p99_ms": round(_percentile(load.transcript_ms, 0.99), 1),
        "segments_per_s": round(segments / load.wall, 1),
        "server_cpu_s": round(cpu, 1),
        "server_cpu_util": round(cpu / wall, 2),
        "segments_per_cpu_s": round(segments / cpu, 1) if cpu else None,
        "client_cpu_s": round(client_cpu, 1),
        "box_cpu_util": round(box / wall, 2),
        "automaton_us": round(cost["automaton_us"], 1),
        "regex_us": round(cost["regex_us"], 1),
        "ratio": round(cost["ratio"], 1),
        "recogniser_rtf": round(rtf, 3) if rtf is not None else None,
    }
    print(
        f"{args.calls} calls x {args.rate}/s for {args.seconds:.0f} s, {args.trackers} trackers: "
        f"{segments} segments ({load.errors} errors), {load.cards} cards\n"
        f"callback -> card on the stream: p50 {result['card_p50_ms']} ms, "
        f"p99 {result['card_p99_ms']} ms (transcript p50 {result['transcript_p50_ms']} ms, "
        f"p99 {result['transcript_p99_ms']} ms)\n"
        f"server: {cpu:.1f} CPU s ({result['server_cpu_util']} cores): "
        f"{result['segments_per_cpu_s']} segments per CPU second; client {client_cpu:.1f} CPU s\n"
        f"matching per segment: automaton {cost['automaton_us']:.1f} us, regex loop "
        f"{cost['regex_us']:.1f} us ({cost['ratio']:.1f}x)\n"
        f"recogniser real-time factor: {result['recogniser_rtf']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

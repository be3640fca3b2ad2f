"""Speech for the Media Stream tests: espeak-ng says it, sox makes it Twilio's 8 kHz mu-law.

Both are Debian packages that ``make test`` installs (``make test-services``).
Without them a test skips with :data:`INSTALL_HINT`, except under ``CI=true``,
where it fails: a CI run must not pass without its speech tests.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest

from tests.support.imap_server import in_ci

INSTALL_HINT = (
    "espeak-ng or sox is not installed: run `make test-services` "
    "(or `apt-get install -y espeak-ng sox`)"
)
FRAME = 160  # 20 ms of 8 kHz mu-law, what Twilio sends per media message


def require_speech_tools() -> None:
    """Skip (fail under CI=true) when espeak-ng or sox is missing."""
    if shutil.which("espeak-ng") and shutil.which("sox"):
        return
    if in_ci():
        pytest.fail(INSTALL_HINT)
    pytest.skip(INSTALL_HINT)


def say_mulaw(*phrases: str, pause_s: float = 1.0, speed: int = 150) -> bytes:
    """The phrases spoken (US English), a pause around each, as raw 8 kHz mu-law.

    ``sox -R`` seeds its dither the same way every run: with sox's default random
    dither the bytes differ each time, and now and then pocketsphinx hears
    "well the right" for "what is the price" (a CI run failed on it).
    """
    require_speech_tools()
    out = b""
    for text in phrases:
        out += subprocess.run(
            ["sh", "-c", 'espeak-ng -v en-us -s "$1" --stdout "$2" | '
             'sox -R -t wav - -t raw -r 8000 -e mu-law -b 8 -c 1 - pad "$3" "$3"',
             "say", str(speed), text, str(pause_s / 2)],
            check=True, capture_output=True, timeout=60,
        ).stdout  # fmt: skip
    return out


def media_messages(
    audio: bytes, track: str, stream_sid: str = "MZ1", start_ms: int = 0
) -> list[str]:
    """Twilio ``media`` messages carrying ``audio`` in 20 ms frames, from ``start_ms``."""
    out = []
    for i in range(0, len(audio), FRAME):
        out.append(json.dumps({
            "event": "media",
            "sequenceNumber": str(i // FRAME + 2),
            "media": {
                "track": track,
                "chunk": str(i // FRAME + 1),
                "timestamp": str(start_ms + i // 8),
                "payload": base64.b64encode(audio[i : i + FRAME]).decode(),
            },
            "streamSid": stream_sid,
        }))  # fmt: skip
    return out


def start_message(call_sid: str, stream_sid: str = "MZ1", **params: str) -> str:
    return json.dumps({
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "streamSid": stream_sid,
            "accountSid": "AC" + "0" * 32,
            "callSid": call_sid,
            "tracks": ["inbound", "outbound"],
            "customParameters": params,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": stream_sid,
    })  # fmt: skip


CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def stop_message(call_sid: str, stream_sid: str = "MZ1") -> str:
    return json.dumps({
        "event": "stop", "sequenceNumber": "999", "streamSid": stream_sid,
        "stop": {"accountSid": "AC" + "0" * 32, "callSid": call_sid},
    })  # fmt: skip

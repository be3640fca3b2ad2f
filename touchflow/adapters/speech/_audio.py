"""G.711 mu-law to 16-bit PCM, and 8 kHz to 16 kHz."""

from __future__ import annotations

import array
import sys


def _mulaw_to_linear(byte: int) -> int:
    # ITU-T G.711: bits are inverted; sign, 3-bit exponent, 4-bit mantissa; bias 0x84.
    u = ~byte & 0xFF
    magnitude = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return (0x84 - magnitude) if u & 0x80 else (magnitude - 0x84)


#: Every mu-law byte's 16-bit sample.
MULAW_TABLE: tuple[int, ...] = tuple(_mulaw_to_linear(b) for b in range(256))


def mulaw_decode(data: bytes) -> array.array[int]:
    """Mu-law bytes -> signed 16-bit samples."""
    return array.array("h", [MULAW_TABLE[b] for b in data])


def upsample_8k_to_16k(samples: array.array[int], last: int = 0) -> array.array[int]:
    """Double the rate by linear interpolation; ``last`` is the previous chunk's last sample."""
    out = array.array("h", bytes(4 * len(samples)))
    prev = last
    for i, s in enumerate(samples):
        out[2 * i] = (prev + s) // 2
        out[2 * i + 1] = s
        prev = s
    return out


def pcm_bytes(samples: array.array[int]) -> bytes:
    """Little-endian 16-bit PCM bytes (what the recogniser reads)."""
    if sys.byteorder != "little":
        samples = array.array("h", samples)
        samples.byteswap()
    return samples.tobytes()

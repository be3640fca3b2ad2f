"""G.711 mu-law decoding and 8 -> 16 kHz upsampling (no audioop)."""

from __future__ import annotations

import array

from touchflow.adapters.speech import mulaw_decode, upsample_8k_to_16k
from touchflow.adapters.speech._audio import MULAW_TABLE, pcm_bytes


def test_the_mulaw_table_matches_g711():
    # ITU-T G.711 reference points: the two zeros, full scale both ways, the first steps.
    assert mulaw_decode(bytes([0xFF, 0x7F, 0x00, 0x80, 0xFE, 0x7E])).tolist() == [
        0, 0, -32124, 32124, 8, -8,
    ]  # fmt: skip
    assert len(MULAW_TABLE) == 256
    # Monotonic within each sign half: a larger code is a smaller magnitude.
    positive = [MULAW_TABLE[b] for b in range(0x80, 0x100)]
    assert positive == sorted(positive, reverse=True)


def test_upsampling_doubles_the_rate_and_interpolates_across_chunks():
    out = upsample_8k_to_16k(array.array("h", [100, 300]), last=-100)
    assert out.tolist() == [0, 100, 200, 300]
    assert len(pcm_bytes(out)) == 8  # 16-bit little-endian
    assert pcm_bytes(array.array("h", [1])) == b"\x01\x00"

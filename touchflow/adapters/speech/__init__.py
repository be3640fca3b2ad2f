"""Offline speech for self-hosted call transcripts (Twilio Media Streams).

Twilio streams each track as 8 kHz mu-law (G.711); :func:`mulaw_decode` turns
it into 16-bit PCM (a 256-entry table: ``audioop`` is deprecated and gone in
Python 3.13), :func:`upsample_8k_to_16k` doubles the rate (linear
interpolation) because the recogniser's acoustic model is 16 kHz, and
:class:`PocketsphinxRecognizer` segments speech by silence (pocketsphinx's
voice-activity endpointer) and decodes each utterance with the US-English model
that ships inside the ``pocketsphinx`` wheel (no download, no network).
:class:`MediaStreamTranscriber` reads the Media Stream's JSON messages and
turns each track's utterances into final transcript segments with sequence
numbers. Any :class:`~touchflow.ports.SpeechRecognizer` can replace pocketsphinx.
"""

from touchflow.adapters.speech._audio import mulaw_decode, upsample_8k_to_16k
from touchflow.adapters.speech._media_stream import MediaStreamTranscriber, StreamRefused
from touchflow.adapters.speech._pocketsphinx import PocketsphinxRecognizer

__all__ = [
    "MediaStreamTranscriber",
    "PocketsphinxRecognizer",
    "StreamRefused",
    "mulaw_decode",
    "upsample_8k_to_16k",
]

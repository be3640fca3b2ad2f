"""PocketSphinx: an offline recogniser whose US-English model is in its wheel.

Rough on telephone audio (a 16 kHz model fed upsampled 8 kHz speech): good
enough to find key words, not a transcript to quote. The endpointer (voice
activity) cuts the track into utterances at silences; each utterance is
decoded whole once it ended (``full_utt``: cepstral mean normalisation over the
utterance, markedly better than decoding frame by frame on this audio), so
segments are final only, one per utterance.
"""

from __future__ import annotations

from pocketsphinx import Decoder, Endpointer

from touchflow.ports import Utterance

SAMPLE_RATE = 16000


class PocketsphinxRecognizer:
    """:class:`~touchflow.ports.SpeechRecognizer` on pocketsphinx (one per track)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, window: float = 0.3, ratio: float = 0.9) -> None:
        self._ep = Endpointer(window=window, ratio=ratio, sample_rate=SAMPLE_RATE)
        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self._pending = b""
        self._speech: list[bytes] = []
        self._start = 0.0

    def _frame(self, frame: bytes, *, last: bool = False) -> list[Utterance]:
        was_speech = self._ep.in_speech
        speech = self._ep.end_stream(frame) if last else self._ep.process(frame)
        if speech:
            if not was_speech and not self._speech:
                self._start = self._ep.speech_start
            self._speech.append(speech)
            if not self._ep.in_speech:
                return self._end(self._ep.speech_end)
        return []

    def _end(self, end: float) -> list[Utterance]:
        audio, self._speech = b"".join(self._speech), []
        if not audio:
            return []
        self._decoder.start_utt()
        self._decoder.process_raw(audio, False, True)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        if not text:
            return []
        return [Utterance(text=text, start_ms=round(self._start * 1000), end_ms=round(end * 1000))]

    def feed(self, pcm: bytes) -> list[Utterance]:
        data = self._pending + pcm
        size = self._ep.frame_bytes
        out: list[Utterance] = []
        whole = len(data) - len(data) % size
        for i in range(0, whole, size):
            out += self._frame(data[i : i + size])
        self._pending = data[whole:]
        return out

    def finish(self) -> list[Utterance]:
        out = self._frame(self._pending, last=True) if self._pending else []
        self._pending = b""
        if self._speech:  # the call ended mid-sentence: what was said so far
            out += self._end(self._ep.speech_end or self._start)
        return out

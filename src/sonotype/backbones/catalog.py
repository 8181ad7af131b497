"""The pretrained encoders sonotype knows by a short name (``sonotype backbone list``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALIASES", "NATIVE_ENCODERS", "Alias", "NativeEncoder"]


@dataclass(frozen=True)
class Alias:
    """A pretrained encoder sonotype knows by a short name (``sonotype backbone list``)."""

    name: str
    hub_id: str
    parameters: str  # of the encoder sonotype runs
    cpu_per_audio_hour: str  # measured, or "not measured"
    note: str = ""

    @property
    def family(self) -> str:
        """The architecture family, from the name: ``whisper``, ``wavlm``, ``hubert``, ``wav2vec2``, ``ast``."""
        return self.name.split("-", 1)[0]

# CPU cost per hour of audio, one thread. whisper-base: real weights, every layer pooled, 24 RAVDESS clips (91 s)
# on this project's AMD EPYC machine: 3.6 CPU-s, 25 audio-s per CPU-s. wav2vec2-base and AST: the README's
# measurement with random weights of the same architecture (same compute). The others: no weights here to time.
ALIASES: dict[str, Alias] = {a.name: a for a in (
    Alias("whisper-tiny", "openai/whisper-tiny", "8.2 M", "not measured"),
    Alias("whisper-base", "openai/whisper-base", "20.6 M", "2.4 CPU-min (measured)"),
    Alias("whisper-small", "openai/whisper-small", "88 M", "not measured"),
    Alias("wavlm-base-plus", "microsoft/wavlm-base-plus", "94 M", "not measured"),
    Alias("hubert-base", "facebook/hubert-base-ls960", "94 M", "not measured"),
    Alias("wav2vec2-base", "facebook/wav2vec2-base", "95 M", "11 CPU-min (measured, random weights)",
          "the main branch may hold only PyTorch .bin weights: pick a revision with safetensors"),
    Alias("ast-audioset", "MIT/ast-finetuned-audioset-10-10-0.4593", "86 M",
          "20 CPU-min for 10 s clips (measured, random weights)"),
)}


@dataclass(frozen=True)
class NativeEncoder:
    """A pretrained encoder sonotype converts and runs itself (:mod:`.native`), by its folder name."""

    name: str
    family: str
    source: str  # where `sonotype backbone fetch NAME` takes the released weights from
    parameters: str
    cpu_per_audio_hour: str
    note: str = ""


# CPU per audio hour, one thread, warm (`sonotype bench backbone NAME`): musicnn-msd on 24 GTZAN clips of 30 s
# (--audio ../shared/data/gtzan/genres_original), Intel Xeon 2.8 GHz: 39 CPU-s (92x real time, one clip at a time).
# efficientat-mn04: 13 CPU-s on the project's AMD EPYC machine (scripts/bench_efficientat.py); on 24 ESC-50 clips
# of 5 s (--audio ../shared/data/esc50/audio), Intel Xeon 2.8 GHz: 12 CPU-s one clip at a time, 10 batched.
NATIVE_ENCODERS: dict[str, NativeEncoder] = {e.name: e for e in (
    NativeEncoder("musicnn-msd", "musicnn", "https://pypi.org/project/musicnn/0.1.0/ (the wheel's MSD_musicnn checkpoint)",
                  "0.79 M", "about 40 CPU-s (measured)", "music tags: 50 MSD tags (genre, instruments, mood)"),
    NativeEncoder("efficientat-mn04", "efficientat",
                  "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt",
                  "0.99 M", "about 13 CPU-s (measured)", "general sound: 527 AudioSet classes"),
)}

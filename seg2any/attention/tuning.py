"""The measured choice behind attention backend "auto".

Which exact backend is fastest is a property of the GPU, the torch build and the sequence length,
not something one table can hold: on an H100 a mask costs cuDNN attention 2x, so ``split`` (only the
visible pairs, unmasked kernels, plus gathers and a merge per piece) should win once sequences are
long; on a CPU, with one dense call per piece, it is several times slower than the masked call
(BENCHMARKS.md); consumer GPUs and other torch releases sit somewhere else. So "auto" times its eligible
backends once, on the call's own q/k/v, and keeps the winner per (device, torch, dtype, heads,
batch, length bucket, kind of rule).

Choices are kept in memory and in a small JSON file (``SEG2ANY_TUNING_FILE``; default
``seg2any/attention-choices.json`` under ``$XDG_CACHE_HOME`` or ``~/.cache``; ``off`` keeps them in
memory only): the backends agree only to rounding (bf16: ~1e-3 per call), so the next process, and
the next image of the same size, must run the same kernels to give the same pixels. A challenger replaces the
first candidate (the simplest) only when it is :data:`PREFER_MARGIN` faster, so noise near a
crossover does not flip the choice between machines of one kind.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger("seg2any")

BUCKETS_PER_OCTAVE = 4  # length buckets 19% apart: kernels' relative cost changes slowly with L
PREFER_MARGIN = 0.05
FILE_VERSION = 1


def length_bucket(L: int) -> int:
    return round(BUCKETS_PER_OCTAVE * math.log2(max(int(L), 1)))


def bucket_bounds(bucket: int) -> tuple[int, int]:
    """The token counts that fall into ``bucket`` (for the log line)."""
    lo = math.ceil(2 ** ((bucket - 0.5) / BUCKETS_PER_OCTAVE))
    hi = math.ceil(2 ** ((bucket + 0.5) / BUCKETS_PER_OCTAVE)) - 1
    return lo, hi


def pick_fastest(ms: dict[str, float], margin: float = PREFER_MARGIN) -> str:
    """The first candidate unless another is ``margin`` faster; then the fastest."""
    first = next(iter(ms))
    best = min(ms, key=ms.get)
    return best if ms[best] < (1.0 - margin) * ms[first] else first


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} {platform.machine()} {platform.processor() or ''}".strip()


def default_path() -> Path | None:
    v = os.environ.get("SEG2ANY_TUNING_FILE")
    if v is not None:
        return None if v.strip().lower() in ("", "0", "off", "none") else Path(v).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "seg2any" / "attention-choices.json"


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def wall_times(fn: Callable[[], object], device: torch.device, warmup: int = 1, repeat: int = 3) -> list[float]:
    """Seconds per call of ``fn`` (device synchronised around each) after ``warmup`` calls (the
    first builds masks/plans); the benchmarks time with this too."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def median_ms(fn: Callable[[], object], device: torch.device, warmup: int = 1, repeat: int = 3) -> float:
    times = sorted(wall_times(fn, device, warmup, repeat))
    return times[len(times) // 2] * 1e3


class BackendTuner:
    """Measured backend choices, remembered in memory and (if ``path``) in a JSON file."""

    def __init__(self, path: Path | None, warmup: int = 1, repeat: int = 3):
        self.path = path
        self.warmup, self.repeat = warmup, repeat
        self.measurements = 0  # how many choices this tuner had to measure
        self._choices: dict[str, dict] | None = None
        self._file_failed = False

    @staticmethod
    def key(device: torch.device, q: torch.Tensor, isolate: bool) -> str:
        B, H, L, D = q.shape
        cuda = f" cuda {torch.version.cuda}" if device.type == "cuda" else ""
        kind = "isolation" if isolate else "base"
        return f"{device_name(device)} | torch {torch.__version__}{cuda} | {str(q.dtype)[6:]} | B{B} H{H} D{D} | L~{length_bucket(L)} | {kind}"

    def lookup(self, key: str) -> dict | None:
        return self._load().get(key)

    def choose(self, key: str, candidates: dict[str, Callable[[], object]], device: torch.device) -> dict:
        """Time every candidate (first = the default), keep and return {"choice", "ms"}."""
        ms = {name: round(median_ms(fn, device, self.warmup, self.repeat), 4) for name, fn in candidates.items()}
        entry = {"choice": pick_fastest(ms), "ms": ms}
        self.measurements += 1
        self._load()[key] = entry
        self._save(key, entry)
        return entry

    # -- the file ------------------------------------------------------------------------
    def _read(self) -> dict:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("version") != FILE_VERSION or not isinstance(data.get("choices"), dict):
                raise ValueError(f"not a version-{FILE_VERSION} choices file")
            return {k: v for k, v in data["choices"].items() if isinstance(v, dict) and isinstance(v.get("choice"), str)}
        except (OSError, ValueError) as exc:
            log.warning("Seg2Any: ignoring the attention choices file %s (%s); measuring again", self.path, exc)
            return {}

    def _load(self) -> dict:
        if self._choices is None:
            self._choices = self._read()
        return self._choices

    def _save(self, key: str, entry: dict):
        if self.path is None or self._file_failed:
            return
        try:
            merged = self._read()  # another process may have added choices since we loaded
            merged[key] = entry
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": FILE_VERSION, "choices": merged}, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as exc:
            self._file_failed = True
            log.warning(
                "Seg2Any: cannot write the attention choices file %s (%s); choices are kept for this process only "
                "(set SEG2ANY_TUNING_FILE to a writable path, or to off)",
                self.path,
                exc,
            )


_process_tuner: BackendTuner | None = None


def process_tuner() -> BackendTuner:
    """The tuner "auto" uses on CUDA (one per process, file from :func:`default_path`)."""
    global _process_tuner
    path = default_path()
    if _process_tuner is None or _process_tuner.path != path:
        _process_tuner = BackendTuner(path)
    return _process_tuner

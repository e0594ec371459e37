"""Token windows for next-token pretraining, drawn from one or more dataset catalogues.

Each source is a dataset folder in its publisher's layout (any catalogue of
:mod:`cardiolens.datasets`) and one lead of it. Its records are split by patient into training and
held-out records, cut once into a memory-mapped window cache at the model's sampling rate, and
read back as crops of ``block_size + 1`` samples that are tokenised exactly as inference tokenises
a context (:func:`cardiolens.signal.tokenize`, each crop by its own min and max, ``span="window"``).

Batches are a pure function of ``(seed, step)``: the same step draws the same global batch whether
the run was interrupted or not, and whatever the number of processes (each rank takes its slice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cardiolens.datasets import build_window_cache, open_dataset, patient_split
from cardiolens.datasets.base import Catalogue
from cardiolens.errors import CardiolensError, DatasetError
from cardiolens.signal.tokenize import tokenize

log = logging.getLogger(__name__)

# lead preferred for each modality, in order; HeartGPT's ECG model was trained on lead I
_PREFERRED_LEADS = {
    "ECG": ("I", "II", "MLII", "V5", "ECG"),
    "PPG": ("PLETH", "PPG"),
}
TOKEN_SPANS = ("window", "record")
# records read to check a named lead before training starts (enough to see past a few odd records)
_RECORDS_LOOKED_AT = 10


def choose_lead(catalogue: Catalogue, modality: str) -> str:
    """The lead of ``catalogue`` that best matches ``modality`` (lead I for ECG, PLETH for PPG)."""
    first = catalogue.load(catalogue.record_ids[0])
    upper = {name.upper(): name for name in first.leads}
    for wanted in _PREFERRED_LEADS.get(modality.upper(), ()):
        if wanted in upper:
            return upper[wanted]
    if modality.upper() == "ECG" and len(first.leads) == 1:
        return first.leads[0]  # single-lead recorders (CinC 2017 AliveCor) name the lead freely
    raise DatasetError(
        f"{catalogue.root}: no {modality} lead among {', '.join(first.leads)}; name one with a 'folder#LEAD' source"
    )


def _check_lead_modality(catalogue: Catalogue, lead: str, modality: str, spec: str) -> None:
    """Refuse a named lead the model does not read: the other heart signal (a PPG lead for an ECG
    model, or the reverse) or no heart signal at all (respiration, a pressure)."""
    from cardiolens.signal.leads import modality as lead_modality

    # a lead some records lack is for the window cache to report (which records, and why); a lead that
    # none of the first records has is a typo, refused here, before any process is launched
    looked = []
    for rid in catalogue.record_ids[:_RECORDS_LOOKED_AT]:
        try:
            looked.append(catalogue.load(rid))
        except CardiolensError:  # an unreadable record is the cache's to skip and report
            continue
    wanted = lead.casefold()  # lead names match as in Record.select_leads: whatever their case
    first = next((r for r in looked if any(name.casefold() == wanted for name in r.leads)), None)
    if first is None:
        if not looked:
            return  # none of them readable: the window cache says why, record by record
        leads = sorted({name for record in looked for name in record.leads})
        raise DatasetError(
            f"{spec}: no lead {lead} in the first {len(looked)} record(s) of {catalogue.root} (their leads: "
            f"{', '.join(leads)})"
        )
    index = first.lead_index(lead)
    kind = lead_modality(first.leads[index], first.units[index])
    if kind == "other":
        raise DatasetError(
            f"{spec}: lead {lead} is no heart signal (respiration, pressure ...) and the model reads "
            f"{modality.upper()}; name an {modality.upper()} lead"
        )
    if kind != modality.upper():
        raise DatasetError(f"{spec}: lead {lead} is {kind} and the model reads {modality.upper()}; name another lead")


@dataclass
class Source:
    """One dataset folder, one lead, and its held-out records."""

    name: str
    root: Path
    lead: str
    train_ids: list[str]
    heldout_ids: list[str]
    windows: np.ndarray  # (windows, samples) float32, memory-mapped
    train_index: np.ndarray  # positions in ``windows`` of training windows
    heldout_index: np.ndarray  # positions of held-out windows


def parse_source(spec: str) -> tuple[Path, str | None]:
    """``"folder"`` or ``"folder#LEAD"`` -> (folder, lead or None)."""
    folder, _, lead = spec.partition("#")
    return Path(folder), (lead or None)


def check_sources(specs: list[str], modality: str) -> list[tuple[Path, Catalogue, str]]:
    """Each source's folder, catalogue and lead, opened (no windows read) so that a wrong folder or lead
    is refused at once: ``(root, catalogue, lead)`` per spec, in order."""
    if not specs:
        raise DatasetError("pretraining needs at least one dataset folder (--data FOLDER[#LEAD])")
    opened = []
    for spec in specs:
        root, lead = parse_source(spec)
        catalogue = open_dataset(root)
        if lead:
            _check_lead_modality(catalogue, lead, modality, spec)
        opened.append((root, catalogue, lead or choose_lead(catalogue, modality)))
    return opened


def open_sources(
    specs: list[str],
    *,
    modality: str,
    fs: float,
    cache_dir: Path,
    holdout: float = 0.1,
    seed: int = 0,
    window_seconds: float = 10.0,
    progress: bool = True,
) -> list[Source]:
    """Open, split by patient and cache every source (cached windows are reused when unchanged).

    Args:
        specs: dataset folders, each optionally ``#LEAD``.
        modality: ``"ECG"`` or ``"PPG"``: picks the lead when none is named.
        fs: the model's sampling rate; records are resampled to it.
        cache_dir: where the window caches live (one per source and setting).
        holdout: fraction of each source's records (grouped by patient) never trained on.
        seed: split seed.
        window_seconds: length of the cached windows the training crops are cut from.
        progress: progress bars while caches are built.
    """
    sources = []
    for root, catalogue, lead in check_sources(specs, modality):
        split = patient_split(catalogue, val=0.0, test=holdout, seed=seed, stratify=False)
        name = f"{catalogue.name}-{lead}".replace("/", "_")
        cache = build_window_cache(
            catalogue,
            cache_dir / f"{name}-{fs:g}hz-{window_seconds:g}s",
            fs=fs,
            window_seconds=window_seconds,
            leads=[lead],
            on_error="skip",
            progress=progress,
        )
        if cache.meta.get("skipped"):
            log.warning("%s: %d records skipped (see %s/meta.json)", root, len(cache.meta["skipped"]), cache.path)
        windows = cache.windows[:, 0, :]  # (windows, samples), still memory-mapped
        usable = np.ptp(windows, axis=1) > 0  # a flat window carries nothing to learn
        train_index = np.flatnonzero(np.isin(cache.record_ids, split["train"]) & usable)
        heldout_index = np.flatnonzero(np.isin(cache.record_ids, split["test"]) & usable)
        if len(train_index) == 0:
            raise DatasetError(f"{root}: no usable training windows of {window_seconds:g} s in lead {lead}")
        sources.append(
            Source(
                name=name,
                root=Path(catalogue.root),
                lead=lead,
                train_ids=sorted(split["train"]),
                heldout_ids=sorted(split["test"]),
                windows=windows,
                train_index=train_index,
                heldout_index=heldout_index,
            )
        )
    return sources


class TokenBatches:
    """Deterministic batches of ``block_size + 1`` tokens from several sources.

    Args:
        sources: from :func:`open_sources`.
        block_size: model context; crops hold ``block_size + 1`` samples (inputs and targets).
        levels: amplitude levels of the tokeniser.
        weights: sampling weight per source (default: proportional to its training windows).
        seed: the batch of step ``s`` is drawn from ``(seed, s)``.
        token_span: ``"window"`` (each crop scaled by its own min/max, as at inference) or
            ``"record"`` (scaled by the min/max of the whole cached window it came from, as HeartGPT
            scaled each 10 s training record).
    """

    def __init__(
        self,
        sources: list[Source],
        block_size: int,
        levels: int,
        weights: list[float] | None = None,
        seed: int = 0,
        token_span: str = "window",
    ) -> None:
        if token_span not in TOKEN_SPANS:
            raise DatasetError(f"token_span must be one of {', '.join(TOKEN_SPANS)}, not {token_span!r}")
        self.sources = sources
        self.crop = block_size + 1
        self.levels = levels
        self.seed = seed
        self.token_span = token_span
        for s in sources:
            if s.windows.shape[1] < self.crop:
                raise DatasetError(
                    f"{s.root}: cached windows of {s.windows.shape[1]} samples are shorter than the "
                    f"{self.crop} a context of {block_size} tokens needs"
                )
        counts = np.array([len(s.train_index) for s in sources], dtype=np.float64)
        w = counts if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != counts.shape or np.any(w < 0) or w.sum() <= 0:
            raise DatasetError(f"weights must be {len(sources)} non-negative numbers, not all 0 (got {weights})")
        self.probabilities = w / w.sum()

    def _tokens(self, rows: np.ndarray, full: np.ndarray) -> np.ndarray:
        """(B, crop) float -> int64 tokens; ``full`` are the whole windows the rows were cut from."""
        if self.token_span == "record":
            scale = (full.min(axis=1), full.max(axis=1))
            tokens, _ = tokenize(rows, vocab_size=self.levels, scale=scale)
            return tokens
        flat = np.ptp(rows, axis=1) <= 0
        if flat.any():  # a flat stretch inside a usable window: stand in the window's first crop
            rows = rows.copy()
            rows[flat] = full[flat, : self.crop]
        tokens, _ = tokenize(rows, vocab_size=self.levels)
        return tokens

    def batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
        """Token crops (batch_size // world_size, block_size + 1) of the global batch of ``step``."""
        rng = np.random.default_rng([self.seed, step])
        which = rng.choice(len(self.sources), size=batch_size, p=self.probabilities)
        picks = np.empty(batch_size, dtype=np.int64)
        for k, source in enumerate(self.sources):
            n = int(np.sum(which == k))
            picks[which == k] = source.train_index[rng.integers(0, len(source.train_index), size=n)]
        width = np.array([self.sources[k].windows.shape[1] for k in which])
        offsets = rng.integers(0, width - self.crop + 1)
        mine = slice(rank, batch_size, world_size)  # this rank's share of the global batch
        full = np.stack([self.sources[k].windows[i] for k, i in zip(which[mine], picks[mine], strict=True)])
        rows = np.stack([f[o : o + self.crop] for f, o in zip(full, offsets[mine], strict=True)])
        return self._tokens(rows.astype(np.float64), full.astype(np.float64))

    def heldout(self, max_windows: int = 256) -> np.ndarray:
        """Fixed held-out token crops (first crop of each held-out window, spread over the sources)."""
        per_source = max(1, max_windows // len(self.sources))
        rows, full = [], []
        for s in self.sources:
            n = min(per_source, len(s.heldout_index))
            positions = np.linspace(0, len(s.heldout_index) - 1, n).round().astype(int)
            for i in s.heldout_index[positions]:
                full.append(np.asarray(s.windows[i], dtype=np.float64))
                rows.append(full[-1][: self.crop])
        if not rows:
            raise DatasetError("no held-out windows: raise the holdout fraction or add records")
        return self._tokens(np.stack(rows), np.stack(full))

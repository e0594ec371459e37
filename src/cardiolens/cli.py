"""The ``cardiolens`` command: a thin mapping of subcommands to typed public functions.

Each subcommand parses its arguments with jsonargparse (from the function's signature and
docstring), calls public cardiolens functions and prints or writes the result. A CardiolensError
becomes a one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from cardiolens.errors import CardiolensError, ModelInputError


def info(
    path: Path, fs: float | None = None, format: str | None = None, as_json: bool = False, nan_policy: str = "raise"
) -> None:
    """Summarise a record (rate, leads, units, length, annotations, quality) or a dataset folder.

    Args:
        path: a record file, or a dataset folder in its publisher's layout.
        fs: sampling rate for formats that do not carry one (NumPy, CSV without a time column).
        format: force a reader (wfdb, mat, npy, npz, csv, heartgpt).
        as_json: print JSON instead of text.
        nan_policy: what to do with missing samples (NaN): raise (default) or interpolate (fill the gaps
            linearly; the record's metadata says which samples were filled).
    """
    from cardiolens.analysis import _json_default, describe_record
    from cardiolens.io import load_record

    if Path(path).is_dir():
        from cardiolens.datasets import open_dataset

        summary = open_dataset(path).summary()
    else:
        summary = describe_record(load_record(path, fs=fs, format=format, nan_policy=nan_policy))
    if as_json:
        print(json.dumps(summary, indent=2, default=_json_default))
    else:
        _print_summary(summary)


def _print_summary(summary: dict, indent: str = "") -> None:
    for key, value in summary.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _print_summary(value, indent + "  ")
        elif isinstance(value, list) and value and all(isinstance(v, dict) and "lead" in v for v in value):
            print(f"{indent}{key}:")  # per-lead rows (quality): one line each
            for row in value:
                print(f"{indent}  {row['lead']}: {_lead_line(row)}")
        else:
            print(f"{indent}{key}: {value}")


def _lead_line(row: dict) -> str:
    """One lead's quality as a short line: its problems (or ok), heart rate and peak-to-peak."""
    rate = row.get("heart_rate_bpm")
    parts = ["; ".join(row.get("problems") or []) or "ok"]
    if rate is not None:
        parts.append(f"{rate:.0f} bpm")
    if row.get("peak_to_peak") is not None:
        parts.append(f"peak-to-peak {row['peak_to_peak']:.3g}")
    return ", ".join(parts) + (f" ({row['modality']})" if row.get("modality") else "")


def plot(
    path: Path,
    out: Path | None = None,
    start: float = 0.0,
    duration: float = 10.0,
    leads: str | list[str] | None = None,
    beats: bool = True,
    clean: bool = False,
    fs: float | None = None,
    nan_policy: str = "raise",
) -> None:
    """Draw a record on ECG paper as a PNG, detected beats and annotations overlaid.

    Args:
        path: the record file.
        out: figure to write, its format from its suffix (.png, .svg, .pdf; default: <record name>.png in the
            current folder; in a folder given as --out, <record name>.png there; .png is added to a name
            without a suffix).
        start: first second shown.
        duration: seconds shown.
        leads: leads to draw, comma-separated (--leads II,PLETH) or as a list (--leads '[II, PLETH]');
            default: all.
        beats: mark the beats found in each drawn lead.
        clean: band-pass the leads before drawing.
        fs: sampling rate for formats that do not carry one.
        nan_policy: what to do with missing samples (NaN): raise (default) or interpolate (fill the gaps
            linearly; the record's metadata says which samples were filled).
    """
    from cardiolens import analysis
    from cardiolens.atomic import output_file
    from cardiolens.io import load_record
    from cardiolens.plot import plot_record

    record = load_record(path, fs=fs, nan_policy=nan_policy)
    if isinstance(leads, str):
        leads = [name.strip() for name in leads.split(",") if name.strip()]
    if leads:
        record = record.select_leads(leads)
    if clean:
        record = analysis.clean(record)
    from cardiolens.signal.leads import modality

    # beats are marked where there are beats to find: ECG and PPG leads (a respiration lead is drawn plain)
    found = (
        {
            lead: analysis.find_beats(record, lead).samples
            for lead, unit in zip(record.leads, record.units, strict=True)
            if modality(lead, unit) != "other"
        }
        if beats
        else None
    )
    out = Path(out or f"{record.name}.png")
    if out.is_dir():
        out = out / f"{record.name}.png"
    elif not out.suffix:
        out = out.with_name(out.name + ".png")  # what matplotlib would write: say that path, not another
    plot_record(record, start=start, duration=duration, peaks=found, out=output_file(out))
    print(out)


def _file_or_stdout(out: Path | None) -> Path | None:
    """``--out`` of a command that writes one table: None (and ``-``) for standard output, else the file,
    its folder created and checked (:func:`cardiolens.atomic.output_file`)."""
    from cardiolens.atomic import output_file

    return None if out is None or str(out) == "-" else output_file(out)


def peaks(
    path: Path,
    lead: str | None = None,
    method: str | None = None,
    out: Path | None = None,
    fs: float | None = None,
    nan_policy: str = "raise",
) -> None:
    """Write beat times as CSV (sample, time_s, rr_s): R peaks for ECG leads, pulse peaks for PPG.

    Args:
        path: the record file.
        lead: lead to use (default: II / MLII / I / the first lead).
        method: detector (default: the package default for the lead's modality).
        out: CSV to write, its folder created (default, or -: standard output).
        fs: sampling rate for formats that do not carry one.
        nan_policy: what to do with missing samples (NaN): raise (default) or interpolate (fill the gaps
            linearly; the record's metadata says which samples were filled).
    """
    from cardiolens import analysis
    from cardiolens.io import load_record

    out = _file_or_stdout(out)
    beats = analysis.find_beats(load_record(path, fs=fs, nan_policy=nan_policy), lead=lead, method=method)
    if len(beats.samples) == 0:
        print(f"warning: {path}: no beats found in lead {beats.lead} (flat, or no detectable beat)", file=sys.stderr)
    if out is None:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "beats.csv"
            beats.to_csv(target)
            sys.stdout.write(target.read_text())
    else:
        beats.to_csv(out)
        print(f"{len(beats.samples)} beats in lead {beats.lead} ({beats.method}) -> {out}", file=sys.stderr)


def features(
    path: str,
    lead: str | None = None,
    out: Path | None = None,
    fs: float | None = None,
    nan_policy: str = "raise",
    extended: bool = False,
) -> None:
    """Write record-level rhythm features of an ECG lead as CSV, one row per record.

    The features (cardiolens.tasks.rhythm_features) describe RR irregularity, ectopy, the P wave, beat
    similarity, the median beat's shape and signal quality. In a folder, a record that cannot be read or
    has no usable ECG lead is skipped with a warning naming it; a file named itself, or a folder where no
    record's features could be computed, is an error.

    Args:
        path: a record file or a folder of records.
        lead: ECG lead to use (default: II / MLII / I / the first lead).
        out: CSV to write, its folder created (default, or -: standard output).
        fs: sampling rate for formats that do not carry one.
        nan_policy: what to do with missing samples (NaN): raise (default) or interpolate (fill the gaps
            linearly; the record's metadata says which samples were filled).
        extended: add the 6 event and RR-entropy features (one ectopic beat, the earliest beat, the longest
            pause after a short RR, wide beats, sample entropy, COSEn) after the standard set.
    """
    import csv
    import io

    from tqdm.auto import tqdm

    from cardiolens.analysis import default_lead
    from cardiolens.io import load_record
    from cardiolens.io.repair import check_nan_policy
    from cardiolens.signal.leads import modality
    from cardiolens.tasks.predict import record_files
    from cardiolens.tasks.rhythm_features import EXTENDED_FEATURE_NAMES, FEATURE_NAMES, record_features

    out = _file_or_stdout(out)  # before minutes of features: a folder or a file in the way is said now
    check_nan_policy(nan_policy)  # once here: a folder's records would each be skipped for it
    names = EXTENDED_FEATURE_NAMES if extended else FEATURE_NAMES
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["record", "lead", *names])
    files = record_files([path])
    named = Path(path).is_file()  # as predict: a file named itself raises, one found in a folder is skipped
    written, skipped = 0, []
    for file in tqdm(files, desc="rhythm features", unit="rec", disable=len(files) < 20, file=sys.stderr):
        try:
            record = load_record(file, fs=fs, nan_policy=nan_policy)
            name = lead or default_lead(record)
            index = record.lead_index(name)  # its error names the file already
            kind = modality(name, record.units[index])
            if kind != "ECG":
                raise CardiolensError(
                    f"{file}: lead {name} is {'a PPG' if kind == 'PPG' else 'neither ECG nor PPG'}; "
                    "rhythm features are computed from an ECG lead"
                )
            try:
                values = record_features(record.signal[index], record.fs, extended=extended)
            except CardiolensError as exc:
                raise CardiolensError(f"{file}: {exc}") from exc
        except CardiolensError as exc:
            if named:
                raise
            logging.getLogger("cardiolens.cli").warning("skipped %s", exc)  # the message names the file
            skipped.append(exc)
            continue
        writer.writerow([file.stem, name, *(f"{v:.6g}" for v in values)])  # NaN: undefined for this record
        written += 1
    if not written:
        raise CardiolensError(
            f"{path}: no record's features could be computed ({len(skipped)} skipped); the first: {skipped[0]}"
        )
    if out is None:
        sys.stdout.write(table.getvalue())
    else:
        out.write_text(table.getvalue())
        left_out = f", {len(skipped)} skipped" if skipped else ""
        print(f"{len(names)} features of {written} record(s){left_out} -> {out}", file=sys.stderr)


def demo(out: Path = Path("demo-output"), seconds: float = 30.0) -> None:
    """Run the main job on a bundled simulated record: read, clean, find beats, plot, generate a continuation, report.

    Args:
        out: folder for the record, figures and report.
        seconds: length of the simulated record.
    """
    from cardiolens.analysis import run_demo

    report = run_demo(out, seconds=seconds)
    print(
        f"record: {report['name']}  {report['fs']:g} Hz  leads {', '.join(report['leads'])}  "
        f"{report['duration_s']:.0f} s"
    )
    for lead, b in report["beats"].items():
        print(f"beats in {lead}: {b['count']} ({b['method']}), heart rate {b['heart_rate_bpm']} bpm")
    print(f"quality: {report['quality']['summary']}")
    for rhythm in (report["rhythm"], report["rhythm_trees"], report["rhythm_mean"]):
        probs = " ".join(f"{c}={p:.2f}" for c, p in rhythm["probabilities"].items())
        # a mean's steps are its members' (printed above) and the averaging, its last step
        steps = rhythm["preprocessing"][-1:] if "members" in rhythm["extra"] else rhythm["preprocessing"]
        print(f"rhythm ({rhythm['model']}, lead II): {rhythm['labels'][0]}  {probs}  [{'; '.join(steps)}]")
    classes = report["beat_classes"]
    counts = " ".join(f"{c}={n}" for c, n in classes["per_class"].items())
    print(f"beat classes ({classes['model']}, lead {classes['lead']}): {classes['beats']} beats  {counts}")
    print(f"generated: {report['generated']['summary']}")
    print(f"wrote {out}/record.png, {out}/report.json, {out}/beats_*.csv")


def generate(
    model: str,
    input: Path,
    steps: int = 500,
    out: Path = Path("generated"),
    fs: float | None = None,
    lead: str | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    seed: int | None = None,
    nan_policy: str = "raise",
    keep: int | None = None,
) -> None:
    """Continue a recording with a generative model; write a CSV and a PNG of context and continuation.

    The context is the end of the recording: resampled to the model's rate when it differs, and cropped
    to the model's window when longer (both said in the summary). The CSV has one row per sample
    (part, sample, time_s, token, value in the recording's units); the PNG shows the continuation in red.

    Args:
        model: a shipped model (ecgpt-small, ppgpt-small), a checkpoint folder, or a published HeartGPT
            .zip/.pth (ECGPT_560k_iters.zip, PPGPT_500k_iters.zip).
        input: the recording to continue (HeartGPT context CSV, WFDB .hea, CSV, .npy, ...).
        steps: samples to generate at the model's rate (500 at 100 Hz is 5 s).
        out: folder for <record>_generated.csv and <record>_generated.png.
        fs: sampling rate of the recording, for formats that do not carry one (NumPy, CSV without time).
        lead: lead to continue, by name or 0-based position (0 is the first lead), when the recording has several.
        temperature: sampling temperature (lower is more conservative).
        top_k: sample among the k most likely tokens only (k at or above the vocabulary size: all of them).
        greedy: take the most likely token at every step (deterministic).
        seed: seed of the sampler: the same seed gives the same continuation.
        nan_policy: what to do with missing samples (NaN): raise (default) or interpolate (fill the gaps
            linearly).
        keep: past the model's window, the context tokens kept when its cache is re-primed (default
            three quarters of the window; the window size, 500 for HeartGPT, gives the published
            sliding window exactly, at its cost).
    """
    from cardiolens.generate import generate_file

    done = generate_file(
        model,
        input,
        steps=steps,
        out=out,
        fs=fs,
        lead=lead,
        temperature=temperature,
        top_k=top_k,
        greedy=greedy,
        seed=seed,
        nan_policy=nan_policy,
        keep=keep,
    )
    print(done.summary)


def pretrain_gpt(
    data: str | list[str] | None = None,
    model: str = "ecgpt-small",
    out: Path = Path("runs/pretrain"),
    max_steps: int = 2000,
    batch_size: int = 32,
    lr: float = 1e-3,
    min_lr: float = 1e-4,
    warmup_steps: int = 100,
    weight_decay: float = 0.1,
    grad_clip: float = 1.0,
    weights: list[float] | None = None,
    model_overrides: dict | None = None,
    holdout: float = 0.1,
    eval_every: int = 200,
    eval_windows: int = 256,
    token_span: str = "window",
    seed: int = 0,
    precision: str = "32-true",
    accelerator: str = "cpu",
    devices: int = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    cache_dir: Path | None = None,
    stop_at: int | None = None,
    threads: int = 0,
) -> None:
    """Pretrain a GPT preset on next-token prediction of tokenised ECG/PPG (resumes when --out holds a run).

    Args:
        data: a dataset folder in its publisher's layout, or several as --data '[A, B]' or repeated --data+ A
            --data+ B; each optionally FOLDER#LEAD (default lead for ECG: the first of I, II, MLII, V5, ECG
            the records have, or a single-lead recorder's one lead; for PPG: PLETH).
        model: GPT preset (ecgpt-small, ppgpt-small, heartgpt-ecg, ...).
        out: run folder (checkpoints, log, split); running again resumes it.
        max_steps: optimisation steps (fixes the schedule; keep it when resuming).
        batch_size: global batch, windows per step over all processes.
        lr: peak learning rate (linear warm-up, cosine decay).
        min_lr: final learning rate.
        warmup_steps: warm-up steps.
        weight_decay: AdamW weight decay of weight matrices.
        grad_clip: gradient-norm clip (0: none).
        weights: sampling weight of each --data source (default: by window count).
        model_overrides: preset fields to change, e.g. '{"n_layer": 4}'.
        holdout: fraction of each source's records, by patient, held out for the evaluation loss.
        eval_every: steps between evaluations and checkpoints.
        eval_windows: held-out windows evaluated.
        token_span: 'window' (each context scaled by itself, as at inference) or 'record' (HeartGPT's training
            scaling).
        seed: seed of the model, split and batches.
        precision: '32-true' or 'bf16-mixed'.
        accelerator: Lightning Fabric accelerator (cpu, gpu, auto).
        devices: processes (one per device) per node; 2 runs two DDP processes, with --strategy auto or ddp.
        num_nodes: machines.
        strategy: Fabric strategy (auto, ddp).
        cache_dir: where window caches are kept (default: beside --out).
        stop_at: stop after this step as if interrupted (the run resumes later).
        threads: torch threads per process (0: default).
    """
    from cardiolens.tasks import PretrainConfig
    from cardiolens.tasks import pretrain_gpt as run
    from cardiolens.tasks.parallel import is_main_process

    cfg = PretrainConfig(
        data=[data] if isinstance(data, str) else [str(d) for d in data or []],
        model=model,
        model_overrides=dict(model_overrides or {}),
        weights=weights,
        out=str(out),
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        min_lr=min_lr,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        holdout=holdout,
        eval_every=eval_every,
        eval_windows=eval_windows,
        token_span=token_span,
        seed=seed,
        precision=precision,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        cache_dir=None if cache_dir is None else str(cache_dir),
        stop_at=stop_at,
        threads=threads,
    )
    result = run(cfg)
    if not is_main_process():  # one report, from rank 0
        return
    if result.get("finished"):
        print(
            f"step {result['step']}: held-out loss {result['eval_loss']:.4f} "
            f"(best {result['best_eval_loss']:.4f}), {result['tokens_seen']:,} tokens -> {result['checkpoint']}"
        )
    else:
        print(f"stopped at step {result['step']}; run the same command again to resume ({result['out']})")


def finetune(
    task: str,
    data: Path,
    backbone: str = "resnet1d",
    policy: str = "full",
    from_scratch: bool = False,
    label_fraction: float = 1.0,
    folds: int = 5,
    fold_ids: list[int] | None = None,
    split: str = "auto",
    val_fraction: float = 0.1,
    epochs: int = 15,
    min_steps: int = 200,
    patience: int = 4,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    llrd_decay: float = 0.75,
    crops_per_item: int = 1,
    augment: str = "none",
    window_seconds: float | None = None,
    class_weights: str = "balanced",
    max_items: int | None = None,
    seed: int = 0,
    train_seed: int | None = None,
    out: Path = Path("runs/finetune"),
    accelerator: str = "cpu",
    devices: int = 1,
    strategy: str = "auto",
    precision: str = "32-true",
    stop_at_epoch: int | None = None,
    threads: int = 0,
    bootstrap: int = 1000,
    cache_dir: str | None = None,
    load_options: dict | None = None,
) -> None:
    """Fine-tune a backbone on a task with cross-validation; resumes when run again with the same --out.

    Args:
        task: cinc2017-rhythm, cinc2017-af, mitbih-beats, ... (see cardiolens.tasks.list_tasks()).
        data: the task's dataset folder in its publisher's layout.
        backbone: registry preset (fresh weights, e.g. resnet1d), shipped model (ecgpt-small), checkpoint or
            HeartGPT zip.
        policy: full, linear (probe on frozen features), last-block (HeartGPT's) or llrd (layer-wise lr decay).
        from_scratch: fresh weights even when the backbone names trained ones.
        label_fraction: share of training patients whose labels are used (0.01, 0.1, 0.25, 0.5, 1).
        folds: cross-validation folds.
        fold_ids: run only these folds.
        split: auto (the data's published split where it names one, as PTB-XL's folds 1-8/9/10), cv or fixed.
        val_fraction: share of the training patients kept for early stopping and thresholds.
        epochs: most epochs per fold (early stopping on validation).
        min_steps: small training sets (low label fractions) get more epochs, up to this many steps.
        patience: epochs without improvement before stopping.
        batch_size: windows per step.
        lr: peak learning rate.
        weight_decay: AdamW weight decay.
        llrd_decay: per-layer learning-rate factor of --policy llrd.
        crops_per_item: random training windows drawn from each item per epoch.
        augment: none, or noise (white noise and baseline wander added to training windows).
        window_seconds: window length (default: the task's, cut to the backbone's context).
        class_weights: balanced or none.
        max_items: use at most this many items (quick runs).
        seed: folds, fractions and validation splits; also crops and initialisation unless --train_seed is given.
        train_seed: crops, batch order, initialisation and dropout only (default: --seed); runs that differ
            only here share folds and validation splits (a seed ensemble).
        out: run folder (fold checkpoints, out-of-fold predictions, results.json).
        accelerator: Lightning Fabric accelerator (cpu, gpu, auto).
        devices: devices/processes.
        strategy: Fabric strategy (auto, ddp).
        precision: 32-true or bf16-mixed.
        stop_at_epoch: stop after this epoch of a fold as if interrupted; the same command without it resumes.
        threads: torch CPU threads (0: default).
        bootstrap: bootstrap resamples of the 95 % intervals.
        cache_dir: task-data and feature cache folder (default ./.cache/tasks).
        load_options: options of the task's loader as JSON, e.g. '{"train_records": "DS1", "test_records": "DS2"}'.
    """
    from cardiolens.tasks.finetune import FinetuneConfig
    from cardiolens.tasks.finetune import finetune as run
    from cardiolens.tasks.parallel import is_main_process

    cfg = FinetuneConfig(
        task=task,
        data=str(data),
        backbone=backbone,
        policy=policy,
        from_scratch=from_scratch,
        label_fraction=label_fraction,
        folds=folds,
        fold_ids=fold_ids,
        split=split,
        val_fraction=val_fraction,
        epochs=epochs,
        min_steps=min_steps,
        patience=patience,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        llrd_decay=llrd_decay,
        crops_per_item=crops_per_item,
        augment=augment,
        window_seconds=window_seconds,
        class_weights=class_weights,
        max_items=max_items,
        seed=seed,
        train_seed=train_seed,
        out=str(out),
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        precision=precision,
        stop_at_epoch=stop_at_epoch,
        threads=threads,
        bootstrap=bootstrap,
        cache_dir=cache_dir,
        load_options=load_options or {},
    )
    results = run(cfg)
    if not is_main_process():  # one report, from rank 0
        return
    if results.get("stopped"):
        print(
            f"stopped after epoch {results['epoch']} of fold {results['fold']}; run the same command again "
            f"without --stop_at_epoch to resume ({results['out']})"
        )
        return
    print(f"{task}: {results['items']} items, out-of-fold scores -> {out}/results.json")
    _print_scores(results["oof"])


def _print_scores(scores: dict) -> None:
    for name, value in scores.items():
        if "low" in value:
            print(f"  {name}: {value['value']:.4f} [{value['low']:.4f}, {value['high']:.4f}]")


def predict(
    model: str,
    path: str,
    fs: float | None = None,
    lead: str | None = None,
    as_json: bool = False,
    out: Path | None = None,
    nan_policy: str = "raise",
) -> None:
    """Labels and probabilities of a fine-tuned model for one record, or for every record of a folder.

    Args:
        model: shipped task model (rhythm-ecg, rhythm-ecg-trees, rhythm-ecg-mean, beats-ecg, aami-ecg-trees)
            or a checkpoint written by cardiolens finetune.
        path: a record file (a WFDB .hea, CSV, NumPy, .mat) or a folder of records.
        fs: sampling rate for formats that do not carry one (NumPy, CSV without a time column).
        lead: for single-lead models, the lead to read in every record, by name (default: the model's lead
            name, else the first of I, II, MLII, ... of the model's kind, ECG or PPG).
        as_json: print JSON (one object per record) instead of a table.
        out: also write the predictions to this folder: predictions.json, predictions.csv (a row per
            record, with its preprocessing), for beat models <record>_beats.csv (a row per beat), and
            skipped.csv (each file of a folder that could not be predicted, with the problem).
        nan_policy: what to do with missing samples (NaN): raise (default) or interpolate (fill the gaps
            linearly; the record's metadata says which samples were filled, and the prediction says so).
    """
    from cardiolens.atomic import output_folder
    from cardiolens.tasks.predict import predict_paths, write_predictions

    if out is not None:
        output_folder(out, create=False)  # before a folder of records is predicted
    skipped: list[tuple[str, str]] = []
    predictions = predict_paths(model, [path], fs=fs, lead=lead, nan_policy=nan_policy, skipped=skipped)
    if out is not None:
        written = write_predictions(predictions, out, skipped)
        print(f"wrote {len(written)} files to {out}", file=sys.stderr)
    if as_json:
        print(json.dumps([p.to_dict() for p in predictions], indent=2))
        return
    first = predictions[0]
    print(f"model {first.model} ({first.task}); preprocessing of the first record: {'; '.join(first.preprocessing)}")
    for p in predictions:
        if p.kind == "per-sample":
            print(f"{p.source}: {len(p.beats)} beats")
        elif p.kind == "per-beat":
            counts = "  ".join(f"{c}={n}" for c, n in p.extra["beats_per_class"].items())
            print(f"{p.source}: {len(p.beats)} beats classified  {counts}")
        else:
            probs = "  ".join(f"{c}={v:.3f}" for c, v in p.probabilities.items())
            print(f"{p.source}: {','.join(p.labels) or '-'}  {probs}")


def evaluate(model: str, dataset: Path, all_items: bool = False, bootstrap: int = 1000, as_json: bool = False) -> None:
    """Score a fine-tuned model on its task's dataset folder (its test fold only, unless --all_items), with 95% CIs.

    Args:
        model: shipped task model or checkpoint.
        dataset: the dataset folder of the model's task.
        all_items: also score the items the model trained on (optimistic).
        bootstrap: bootstrap resamples of the 95% intervals.
        as_json: print JSON.
    """
    from cardiolens.tasks.predict import evaluate as run

    result = run(model, dataset, all_items=all_items, n_resamples=bootstrap)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['model']} on {result['task']}: {result['items']} items, {result['scope']}")
    _print_scores(result["scores"])
    scores = result["scores"]
    if {"tp", "fn", "fp", "threshold"} <= scores.keys():  # beat detection: the counts behind the rates
        tp, fn, fp = (scores[k]["value"] for k in ("tp", "fn", "fp"))
        print(f"  beats: {tp} found, {fn} missed, {fp} false (decoding threshold {scores['threshold']['value']:g})")


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    ttl_minutes: float = 30.0,
    max_upload_mb: float = 64.0,
    threads: int = 1,
    models: list[Path] | Path | None = None,
    compute_threads: int = 2,
) -> None:
    """Run the web app (load, analyse, explain, generate in the browser) until interrupted.

    Args:
        host: address to bind; the default serves this machine only (the app has no authentication).
        port: port to listen on; open http://HOST:PORT/ in a browser (the API schema is at /openapi.json).
        ttl_minutes: minutes an uploaded record is kept after its last use.
        max_upload_mb: largest upload accepted, in MB.
        threads: torch threads of the server.
        models: your own checkpoint folders (from cardiolens finetune) to offer beside the shipped models: one
            folder, or several as a JSON list or repeated --models+ FOLDER, each named by its folder and as many
            folders above it as keep the names apart (runs/a/fold-0/model and runs/b/fold-0/model:
            a/fold-0/model, b/fold-0/model); one fine-tuned from ecgpt-small gets the attention-shift view.
        compute_threads: requests doing model work at once; the others wait (more than the cores only slows the
            server's answers to everything else).
    """
    if not 1 <= port <= 65535:
        raise CardiolensError(f"port {port} is not a TCP port: give one of 1..65535")
    for option, value, least in (
        ("ttl_minutes", ttl_minutes, "more than 0 (minutes an upload is kept)"),
        ("max_upload_mb", max_upload_mb, "more than 0 (MB)"),
    ):
        if not value > 0 or value == float("inf"):  # also NaN
            raise CardiolensError(f"--{option} {value:g}: give a number {least}")
    for option, value in (("threads", threads), ("compute_threads", compute_threads)):
        if value < 1:
            raise CardiolensError(f"--{option} {value}: give 1 or more")
    from cardiolens.app import serve as run

    if isinstance(models, str | Path):
        models = [Path(models)]
    run(
        host=host,
        port=port,
        ttl_minutes=ttl_minutes,
        max_upload_mb=max_upload_mb,
        threads=threads,
        models=models,
        compute_threads=compute_threads,
    )


def explain(
    model: str,
    path: Path,
    method: str = "auto",
    out: Path = Path("explain"),
    lead: str | None = None,
    start: float = 0.0,
    fs: float | None = None,
    target: str | None = None,
    token: int = -1,
    layer: int | None = None,
    head: int | None = None,
    position: int | None = None,
    n_steps: int = 32,
    projection: str = "pca",
    seed: int = 0,
) -> None:
    """Explain one window of a recording: PNG figures, summary.json and a self-contained report.html.

    Args:
        model: a shipped model (rhythm-ecg, rhythm-ecg-trees, ecgpt-small, ...), a checkpoint folder, or a
            HeartGPT .zip; for a mean of models (rhythm-ecg-mean), each member explains the mean's class in
            out/MEMBER/, linked from out/index.html.
        path: the recording (WFDB .hea, CSV, .npy, HeartGPT context CSV, ...).
        method: comma-separated methods (attention, embeddings, physiology, gradcam, hirescam, ig,
            occlusion, gradrollout, faithfulness, randomization; features for a tree model), or auto:
            every method that applies to the model.
        out: folder for the figures, summary.json and report.html.
        lead: lead to explain for a single-lead model (default: the record's preferred ECG lead).
        start: first second of the window (the window is the model's context or input length).
        fs: sampling rate for formats that do not carry one.
        target: class to explain, by name or index (default: the predicted class).
        token: query token whose attention is drawn (-1: the last, which a last-token classifier reads).
        layer: draw this layer's attention of --token instead of the rollout.
        head: with --layer, one head instead of the mean of the layer's heads.
        position: for per-sample outputs (beat detection), the sample explained (default: all, averaged).
        n_steps: integrated-gradients steps.
        projection: hidden-state map: pca, tsne or umap.
        seed: seed of the random orders and weights of the faithfulness checks.
    """
    from cardiolens.explain import explain_mean, explain_record, summary_lines
    from cardiolens.tasks.model_mean import find_model_mean

    if find_model_mean(model) is not None:  # rhythm-ecg-mean: one report per member, for the mean's class
        if method != "auto" or token != -1 or layer is not None or head is not None or position is not None:
            raise ModelInputError(
                f"{model} is a mean of models: its members are explained with every method that applies to each; "
                "--method, --token, --layer, --head and --position select within one model, so explain a member"
            )
        reports = explain_mean(model, path, out, fs=fs, lead=lead, start=start, target=target, seed=seed)
        for member_report in reports:
            print("\n".join(summary_lines(member_report)))
        print(f"wrote {out}/index.html (the mean's prediction, with a report per member)")
        return
    report = explain_record(
        model,
        path,
        method,
        out,
        fs=fs,
        lead=lead,
        start=start,
        target=target,
        token=token,
        layer=layer,
        head=head,
        position=position,
        n_steps=n_steps,
        projection=projection,
        seed=seed,
    )
    print("\n".join(summary_lines(report)))


COMMANDS = {
    "info": info,
    "plot": plot,
    "peaks": peaks,
    "features": features,
    "demo": demo,
    "generate": generate,
    "serve": serve,
    "finetune": finetune,
    "predict": predict,
    "evaluate": evaluate,
    "explain": explain,
    "pretrain": {
        "_help": "Pretrain a foundation model on unlabelled signal (gpt: next-token on tokenised ECG/PPG).",
        "gpt": pretrain_gpt,
    },
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cardiolens`` command."""
    from jsonargparse import auto_cli

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) != "0":
        # a process other than the first of a multi-process run (torchrun, or Fabric's own launcher):
        # rank 0 says what every process would, once; errors still show from every process
        logging.getLogger("cardiolens").setLevel(logging.ERROR)
    try:
        auto_cli(COMMANDS, args=argv, as_positional=True)
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not at interpreter exit
    except CardiolensError as exc:
        print(f"cardiolens: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except KeyboardInterrupt:
        # training writes its checkpoints atomically: what was saved is whole, and the same command resumes
        print(
            "cardiolens: interrupted; a training run resumes from its last checkpoint when the same command "
            "is run again",
            file=sys.stderr,
        )
        return 130
    return 0


def _silence_stdout() -> None:
    """Point standard output at devnull after the reader went away (``cardiolens peaks REC | head``), so that
    the final flush at exit does not print a second BrokenPipeError (the Python docs' note on SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # a stream without a file descriptor (captured output)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stays open until the process ends
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())

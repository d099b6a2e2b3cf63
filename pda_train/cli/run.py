"""``pda-train run`` and ``evaluate``: thin commands over the trainer and the metrics."""

from __future__ import annotations

import dataclasses
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pda_data.cli.options import FAILED, choice, err_console, esc, fail, os_error_line
from pda_data.shards.names import SPLIT_SCOPES

console = Console()


class StageChoice(str, Enum):
    aux = "aux"
    one = "1"
    two = "2"
    three = "3"
    all = "all"


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class AmpChoice(str, Enum):
    off = "off"
    bf16 = "bf16"
    fp16 = "fp16"


DeviceOption = Annotated[DeviceChoice, typer.Option("--device", help="auto = CUDA when available, else CPU.")]
EvalSplitChoice = choice("EvalSplitChoice", SPLIT_SCOPES)


_RUN_HELP = (
    "Train the PDA model from packed shards: auxiliary networks, then stages 1, 2, 3.\n\nCheckpoints "
    "are atomic; Ctrl-C (SIGINT) or SIGTERM saves one and exits with status 130; a NaN/inf loss stops "
    "with status 1 and keeps the last good checkpoint. Under `torchrun --nproc-per-node N` every rank "
    "trains on its share of the shards; rank 0 logs and checkpoints. The finished plan exports "
    "RUN/final.safetensors (+ .json), the model that translate and evaluate load."
)


_EVALUATE_HELP = (
    "Measure appearance preservation on held-out faces (Tables 1 and 3).\n\nBy default the faces are the "
    "human test split recorded when the shards were packed (--shards, default: the shards of the run that "
    "exported --model). --portraits scores a curated folder instead: if the shards were packed from it, "
    "only its --split keys are used. Hue-HistD (180-bin hue histograms, cosine distance) and LPIPS between "
    "each input and its translation; the landmark MMD of raw and LDN-deformed human contours against anime "
    "contours (--anime, or the shards' anime faces), and FID when --inception is given. The domain score: "
    "the share of translations that an anime-vs-human classifier, trained on the shards' train split (its "
    "held-out accuracy reported), calls anime, beside the same share for the untranslated inputs. Writes "
    "OUT/report.json and OUT/summary.png (input, LDN-warped, anime, pasted back)."
)


def _warning_line(message: Warning | str, *_: object, **__: object) -> None:
    """Show a warning (a skipped shard or sample) as one line, not Python's ``file:line`` plus source."""
    err_console.print(f"[yellow]warning:[/] {esc(message)}", highlight=False)


def run(
    manifest: Annotated[Path, typer.Option("--manifest", "-m", help="Experiment manifest (YAML).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Run folder (checkpoints, samples, logs, models).")
    ],
    shards: Annotated[
        Path | None,
        typer.Option("--shards", help="Override the manifest's data.shards (the pack output folder)."),
    ] = None,
    stage: Annotated[
        StageChoice,
        typer.Option("--stage", help="aux, 1, 2, 3, or all stages of the manifest's plan in order."),
    ] = StageChoice.all,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from RUN/checkpoints/last.pt (same step and LR).")
    ] = False,
    device: DeviceOption = DeviceChoice.auto,
    amp: Annotated[
        AmpChoice, typer.Option("--amp", help="Mixed precision: bf16, fp16 (with loss scaling) or off.")
    ] = AmpChoice.off,
    max_steps: Annotated[
        int | None,
        typer.Option(
            "--max-steps", min=1, help="Stop with a checkpoint after N steps in this call (--resume goes on)."
        ),
    ] = None,
    compile_: Annotated[
        bool, typer.Option("--compile", help="torch.compile the LDN and PSN networks (slow to start).")
    ] = False,
    compile_backend: Annotated[
        str, typer.Option("--compile-backend", help="torch.compile backend: inductor, aot_eager, eager.")
    ] = "inductor",
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="channels_last memory format (fastest on CUDA).")
    ] = False,
    checkpoint_blocks: Annotated[
        bool,
        typer.Option(
            "--checkpoint-blocks",
            help="Activation checkpointing of the PSN residual blocks: less memory, two forward passes.",
        ),
    ] = False,
    threads: Annotated[
        int, typer.Option("--threads", min=0, help="CPU threads per process for torch (0 = torch's default).")
    ] = 0,
    tensorboard: Annotated[
        bool,
        typer.Option("--tensorboard/--no-tensorboard", help="Also log scalars and grids to RUN/tensorboard."),
    ] = True,
) -> None:
    """Train the PDA model from packed shards: auxiliary networks, then stages 1, 2, 3."""
    from pda_data.io.lock import LockError
    from pda_data.shards.index import ShardError
    from pda_data.stream.readers import NoReadableShard
    from pda_train.manifest import ExperimentError, load_experiment
    from pda_train.training.checkpoint import CheckpointError
    from pda_train.training.loop import Trainer, TrainingError
    from pda_train.training.runtime import NonFiniteLossError, init_runtime, shutdown

    try:
        exp = load_experiment(manifest)
        if shards is not None:
            exp = dataclasses.replace(exp, data=dataclasses.replace(exp.data, shards=str(shards.resolve())))
        rt = init_runtime(
            device.value,
            amp.value,
            channels_last=channels_last,
            compile=compile_,
            threads=threads,
            compile_backend=compile_backend,
            checkpoint_blocks=checkpoint_blocks,
        )
    except (ExperimentError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None
    show = rt.is_main
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            result = Trainer(
                exp, out, rt, max_steps=max_steps, tensorboard=tensorboard, console=err_console
            ).run(stage.value, resume=resume)
    except (NonFiniteLossError, NoReadableShard) as exc:
        raise fail(str(exc), FAILED) from None
    except (TrainingError, CheckpointError, ShardError, ExperimentError, LockError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # a full or unwritable run folder: the last checkpoint written stays whole
        raise fail(os_error_line(exc), FAILED) from None
    finally:
        shutdown(rt)
    if show:
        table = Table(title=esc(f"pda-train run: {exp.name} ({exp.plan} plan, preset {exp.preset.name})"))
        table.add_column("item")
        table.add_column("value", overflow="fold")
        table.add_row("status", result.status)
        table.add_row("stage / step", f"{result.stage} / {result.step}")
        table.add_row("checkpoint", esc(result.checkpoint or "-"))
        table.add_row("model", esc(result.model or "-"))
        for k, v in result.aux_metrics.items():
            table.add_row(k, f"{v:.4f}")
        table.add_row("metrics", esc(out / "metrics.jsonl"))
        console.print(table)
    if result.status == "interrupted":
        raise typer.Exit(130)


def evaluate_cmd(
    model: Annotated[Path, typer.Option("--model", help="Exported model (RUN/final.safetensors).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder: report.json, images/, sheet.png.")],
    portraits: Annotated[
        Path | None,
        typer.Option("--portraits", help="Score this curated folder (crop-humans layout), not the shards."),
    ] = None,
    anime: Annotated[
        Path | None,
        typer.Option("--anime", help="Anime annotation Parquet for MMD and FID (default: the shards')."),
    ] = None,
    lpips_weights: Annotated[
        Path | None,
        typer.Option(
            "--lpips-weights",
            help="AlexNet+LPIPS weights (safetensors, or a torch file of plain tensors), used without the "
            "lpips package.",
        ),
    ] = None,
    inception: Annotated[
        Path | None, typer.Option("--inception", help="Inception extractor (.pt2 / TorchScript) for FID.")
    ] = None,
    device: DeviceOption = DeviceChoice.auto,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Faces per batch.")] = 8,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Evaluate at most N portraits (0 = all).")] = 0,
    shards: Annotated[
        Path | None,
        typer.Option("--shards", help="Shard set whose recorded splits pick the faces (default: the run's)."),
    ] = None,
    split: Annotated[
        EvalSplitChoice,
        typer.Option(help="Pack split to score; 'all' mixes train and test faces (counted in the report)."),
    ] = EvalSplitChoice.test,
    summary: Annotated[
        bool,
        typer.Option(help="Write summary.png: input, LDN-warped, anime and pasted-back rows, faces found "
                     "again in their source photos (dlib)."),
    ] = True,
) -> None:
    """Measure appearance preservation on a test set (Tables 1 and 3)."""
    from pda_data.faces.detectors import make_detector
    from pda_data.faces.landmarks import Landmarker
    from pda_data.faces.models import ModelError
    from pda_data.io.lock import LockError, folder_lock
    from pda_data.io.table import TableError
    from pda_data.shards.index import ShardError
    from pda_train.inference.evaluate import REPORT_NAME, EvalOptions, evaluate
    from pda_train.inference.export import ExportError, load_translator
    from pda_train.inference.metrics import MetricUnavailable, load_lpips
    from pda_train.inference.testset import folder_faces, run_shards, shard_faces
    from pda_train.training.runtime import select_device

    shards = shards if shards is not None else run_shards(model)
    if portraits is None and shards is None:
        raise fail(f"{model}: no run manifest beside the model names its shards; pass --shards or "
                   "--portraits")
    options = EvalOptions(
        anime=anime, shards=shards, lpips_weights=lpips_weights, inception=inception, batch_size=batch_size
    )
    if lpips_weights is not None:
        try:  # a weight file the user named must be usable: check it before translating anything
            load_lpips(lpips_weights)
        except MetricUnavailable as exc:
            raise fail(str(exc)) from None
    try:
        if portraits is None:
            faces = shard_faces(shards, split.value, limit)
        else:
            faces = folder_faces(portraits, split.value, shards, limit)
        net = load_translator(model, select_device(device.value))
        if summary:
            options.finder = (make_detector("dlib-hog"), Landmarker())
        with folder_lock(out):
            report = evaluate(net, faces, out, options)
    except OSError as exc:  # an unreadable input or a full, read-only or invalid --out
        raise fail(os_error_line(exc), FAILED) from None
    except (ExportError, ModelError, ShardError, TableError, ValueError, RuntimeError, LockError) as exc:
        raise fail(str(exc)) from None
    where = esc(portraits if portraits is not None else shards)
    per_split = ", ".join(f"{n} {k}" for k, n in sorted(faces.counts.items()))
    err_console.print(f"scoring {len(faces.keys)} face(s) of {where} ({faces.source}, split {split.value}: "
                      f"{esc(per_split)})", highlight=False)
    if faces.counts.get("train") and split.value != "train":
        err_console.print(f"[yellow]warning:[/] {faces.counts['train']} of these faces are in the train "
                          "split the model may have seen (--split all)", highlight=False)
    for message in report["skipped"]:
        err_console.print(f"[yellow]skip:[/] {esc(message)}", highlight=False)
    t1 = Table(title=f"Table 1 style: {report['count']} portraits (lower is better)")
    t1.add_column("Method")
    t1.add_column("LPIPS")
    t1.add_column("Hue-HistD")
    lp = report["lpips"]
    t1.add_row(
        model.name, f"{lp['mean']:.4f}" if "mean" in lp else "n/a", f"{report['hue_histd']['mean']:.4f}"
    )
    console.print(t1)
    mmd = report["mmd"]
    t3 = Table(title="Table 3 style: landmark MMD^2 against anime")
    t3.add_column("Metric")
    t3.add_column("Human vs Anime")
    t3.add_column("Warped vs Anime")
    if "human_vs_anime" in mmd:
        warped = mmd["warped_vs_anime"]
        t3.add_row("MMD", f"{mmd['human_vs_anime']:.4f}", "n/a" if warped is None else f"{warped:.4f}")
    else:
        t3.add_row("MMD", "n/a", "n/a")
    console.print(t3)
    score = report["domain_score"]
    if "translated" in score:
        console.print(
            f"domain score: {score['translated']:.2f} of the translations are anime to a classifier with "
            f"held-out accuracy {score['classifier']['heldout_accuracy']:.2f} "
            f"(untranslated photos: {score['untranslated']:.2f})", highlight=False)
    for name in ("lpips", "mmd", "fid", "domain_score", "summary"):
        if "unavailable" in report.get(name, {}):
            console.print(esc(f"{name}: {report[name]['unavailable']}"), highlight=False)
    if "value" in report["fid"]:
        console.print(f"FID: {report['fid']['value']:.3f}")
    console.print(f"report: {esc(out / REPORT_NAME)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``evaluate`` to the ``pda-train`` application."""
    app.command("run", help=_RUN_HELP)(run)
    app.command("evaluate", help=_EVALUATE_HELP)(evaluate_cmd)

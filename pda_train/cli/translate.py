"""``pda-train translate``, ``translate-video``, ``export``, ``serve``: photos, videos, ONNX, a web page.

Thin commands over :mod:`pda_train.inference`: the exported translator on photos and videos, as an ONNX
graph, and as a web page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pda_data.cli.curate import FacesChoice
from pda_data.cli.options import FAILED, DetectorChoice, choice, err_console, esc, fail, os_error_line
from pda_data.curation.options import HUMAN_DEFAULTS
from pda_train.cli.run import DeviceChoice, DeviceOption

if TYPE_CHECKING:
    from pda_data.curation.options import CurateOptions
    from pda_data.faces.detection import Detector
    from pda_data.faces.landmarks import Landmarker
    from pda_train.inference.backends import Backend

console = Console()
BackendChoice = choice("BackendChoice", ("torch", "onnx"))

ModelOption = Annotated[
    Path,
    typer.Option("--model", help="RUN/final.safetensors (+ .json), or an .onnx file with --backend onnx."),
]
BackendOption = Annotated[
    BackendChoice, typer.Option("--backend", help="torch, or onnx (onnxruntime: the onnx extra).")
]
FacesOption = Annotated[
    FacesChoice, typer.Option("--faces", help="Translate every face that passes the filters, or the largest.")
]
MinFaceOption = Annotated[
    float, typer.Option("--min-face", min=1, help="Skip faces smaller than this (landmark box side, px).")
]
DetectorOption = Annotated[
    DetectorChoice, typer.Option("--detector", help="Face detector (dlib's 68 landmarks follow).")
]
BatchOption = Annotated[int, typer.Option("--batch-size", min=1, help="Faces per translator batch.")]

_TRANSLATE_HELP = (
    "Turn the faces in photos of any size into anime portraits with an exported model.\n\nPer photo: every "
    "face (dlib) that passes curation's size and frontal filters (--faces largest: the largest only), its "
    "68 landmarks, the curation crop, LDN landmark prediction, TPS warp, PSN. Writes <name>_face<k>.png per "
    "face (k = 0 the largest) and, with --paste-back (the default), <name>_pasted.png: the anime faces "
    "blended back into the photo in order of size, feathered, without blending one over another. Faces left "
    "out are listed with the reason; photos without a face are reported and skipped."
)
_VIDEO_HELP = (
    "Translate every face of a video, steadily.\n\nFrames are read and written with OpenCV (the input's fps "
    "and size are kept; audio is not carried over), faces are tracked across frames by the IoU of their "
    "boxes and each track's landmarks are smoothed with a one-euro filter (--min-cutoff, --beta) so the "
    "crops and the paste-back do not jitter; frames go through the translator in batches."
)
_EXPORT_HELP = (
    "Export the translator chain (LDN -> TPS warp -> PSN) of a .safetensors model as one ONNX graph.\n\n"
    "Inputs portrait (B, 3, S, S) and landmarks (B, 68, 2) in [-1, 1], outputs anime and warped; dynamic "
    "batch. The graph is checked with onnxruntime against PyTorch on demo portraits and the largest "
    "difference printed. Needs the onnx extra."
)
_SERVE_HELP = (
    "A web page (Gradio: the app extra) on 127.0.0.1: upload a photo, get the composite and the per-face "
    "anime crops, with the model's settings.\n\nRuns until Ctrl-C."
)


def _load(model: Path, backend: BackendChoice, device: DeviceChoice, detector: DetectorChoice,
          ) -> tuple[Backend, Detector, Landmarker]:
    """The translator backend, face detector and landmarker, or a one-line error."""
    from pda_data.faces.detectors import make_detector
    from pda_data.faces.landmarks import Landmarker
    from pda_data.faces.models import ModelError
    from pda_train.inference.backends import load_backend
    from pda_train.inference.export import ExportError

    try:
        return load_backend(model, backend.value, device.value), make_detector(detector.value), Landmarker()
    except (ExportError, ModelError, ValueError, RuntimeError) as exc:
        raise fail(str(exc)) from None


def _options(backend: Backend, faces: FacesChoice, min_face: float) -> CurateOptions:
    from pda_train.inference.faces import face_options

    return face_options(backend.image_size, faces.value, min_face)


def translate(
    inputs: Annotated[list[Path], typer.Argument(help="Photos (any size) or folders of photos.")],
    model: ModelOption,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder: face crops, composites, sheet.png.")
    ],
    paste: Annotated[
        bool, typer.Option("--paste-back/--no-paste-back", help="Write <name>_pasted.png, the composite.")
    ] = True,
    faces: FacesOption = FacesChoice.all,
    min_face: MinFaceOption = HUMAN_DEFAULTS.min_face,
    backend: BackendOption = BackendChoice.torch,
    device: DeviceOption = DeviceChoice.auto,
    batch_size: BatchOption = 8,
    detector: DetectorOption = DetectorChoice["dlib-hog"],
) -> None:
    """Turn the faces in photos of any size into anime portraits with an exported model."""
    from pda_data.io.lock import LockError, folder_lock
    from pda_train.inference.translate import list_photos, translate_photos

    net, det, marker = _load(model, backend, device, detector)
    files = list_photos(inputs)
    table = Table(title=f"pda-train translate -> {esc(out)}")
    table.add_column("input", overflow="fold")
    table.add_column("status")
    table.add_column("output", overflow="fold")
    try:
        with folder_lock(out):
            results = translate_photos(net, files, out, det, marker, options=_options(net, faces, min_face),
                                       paste=paste, batch_size=batch_size)
    except LockError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # a full, read-only or invalid --out
        raise fail(os_error_line(exc), FAILED) from None
    for r in results:
        if r.error:
            err_console.print(f"[yellow]skip:[/] {esc(r.error)}", highlight=False)
            table.add_row(esc(r.source), f"[red]{esc(r.kind)}[/]", esc(r.error.split(": ", 1)[-1]))
            continue
        for message in r.skipped:
            err_console.print(f"[yellow]face left out:[/] {esc(r.source)}: {esc(message)}", highlight=False)
        status = f"[green]{r.faces} face(s)[/]" + (f", {len(r.skipped)} left out" if r.skipped else "")
        table.add_row(esc(r.source), status, esc(", ".join(r.outputs)))
    ok = sum(not r.error for r in results)
    console.print(table)
    n_faces, n_left = sum(r.faces for r in results), sum(len(r.skipped) for r in results)
    console.print(f"{ok} of {len(files)} photo(s) translated ({n_faces} face(s), {n_left} left out); "
                  f"outputs in {esc(out)}", highlight=False)
    if not ok:
        raise typer.Exit(FAILED)


def translate_video_cmd(
    source: Annotated[Path, typer.Argument(help="Input video (anything OpenCV reads: .mp4, .avi, ...).")],
    model: ModelOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output video (.mp4: mp4v, .avi: MJPG).")],
    faces: FacesOption = FacesChoice.all,
    min_face: MinFaceOption = HUMAN_DEFAULTS.min_face,
    smooth: Annotated[
        bool, typer.Option("--smooth/--no-smooth", help="One-euro smoothing of each track's landmarks.")
    ] = True,
    min_cutoff: Annotated[
        float, typer.Option("--min-cutoff", min=0.01, help="One-euro cutoff of a still face (Hz).")
    ] = 1.0,
    beta: Annotated[
        float, typer.Option("--beta", min=0.0, help="One-euro cutoff rise per face width/s of motion.")
    ] = 2.0,
    backend: BackendOption = BackendChoice.torch,
    device: DeviceOption = DeviceChoice.auto,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Frames per translator batch.")] = 8,
    detector: DetectorOption = DetectorChoice["dlib-hog"],
) -> None:
    """Translate every face of a video, steadily."""
    from pda_data.cli.progress import progress_bar
    from pda_train.inference.video import Smoothing, VideoError, probe_video, translate_video

    net, det, marker = _load(model, backend, device, detector)
    smoothing = Smoothing(min_cutoff=min_cutoff, beta=beta) if smooth else None
    try:
        info = probe_video(source)
        with progress_bar(err_console, unit="frames") as progress:
            task = progress.add_task("translate-video", total=info.frames or None)
            faces_seen = [0]

            def on_frame(result: object) -> None:
                faces_seen[0] += len(result.faces)  # type: ignore[attr-defined]
                progress.advance(task)

            info, written = translate_video(net, source, out, det, marker, _options(net, faces, min_face),
                                            smoothing=smoothing, batch_size=batch_size, on_frame=on_frame)
    except VideoError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(os_error_line(exc), FAILED) from None
    console.print(f"{written} frame(s) at {info.fps:g} fps, {info.size[0]}x{info.size[1]}, {faces_seen[0]} "
                  f"face(s) translated -> {esc(out)} (no audio)", highlight=False)
    if not written:
        raise typer.Exit(FAILED)


def export_cmd(
    model: Annotated[Path, typer.Option("--model", help="Exported model: RUN/final.safetensors (+ .json).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write.")],
    onnx: Annotated[bool, typer.Option("--onnx", help="Export as ONNX (the one format so far).")] = False,
) -> None:
    """Export the translator chain of a .safetensors model as one ONNX graph."""
    if not onnx:
        raise fail("choose a format: --onnx (the .safetensors model is already the PyTorch export)")
    from pda_train.inference.export import ExportError, load_translator, read_translator_config
    from pda_train.inference.onnx_export import demo_inputs, export_onnx, max_difference

    try:
        net = load_translator(model)
        export_onnx(net, out, read_translator_config(model))
        diff = max_difference(net, out, *demo_inputs(4, net.image_size))
    except ExportError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(os_error_line(exc), FAILED) from None
    console.print(f"wrote {esc(out)}; onnxruntime vs PyTorch on 4 demo portraits: max |difference| = "
                  f"{diff:.2e}", highlight=False)


def serve_cmd(
    model: ModelOption,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: a free one).")
    ] = 0,
    faces: FacesOption = FacesChoice.all,
    min_face: MinFaceOption = HUMAN_DEFAULTS.min_face,
    backend: BackendOption = BackendChoice.torch,
    device: DeviceOption = DeviceChoice.auto,
    detector: DetectorOption = DetectorChoice["dlib-hog"],
) -> None:
    """A web page on 127.0.0.1 to translate uploaded photos."""
    net, det, marker = _load(model, backend, device, detector)
    try:
        from pda_train.inference.serve import build_app, serve
    except ImportError as exc:
        raise fail(f"serve needs gradio: pip install 'pda-toolkit[app]' ({exc})") from None
    app = build_app(net, det, marker, _options(net, faces, min_face))
    try:
        url = serve(app, port)
    except OSError as exc:
        raise fail(f"cannot listen on 127.0.0.1:{port} ({exc})") from None
    console.print(f"serving on {url} (Ctrl-C stops)", highlight=False)
    app.block_thread()


def register(app: typer.Typer) -> None:
    """Add ``translate``, ``translate-video``, ``export`` and ``serve`` to the ``pda-train`` application."""
    app.command("translate", help=_TRANSLATE_HELP)(translate)
    app.command("translate-video", help=_VIDEO_HELP)(translate_video_cmd)
    app.command("export", help=_EXPORT_HELP)(export_cmd)
    app.command("serve", help=_SERVE_HELP)(serve_cmd)

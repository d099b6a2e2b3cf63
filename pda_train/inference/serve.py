"""A web page for the translator: upload a photo, get the composite and the per-face anime crops.

A Gradio app (the ``[app]`` extra) on 127.0.0.1: one image upload, a Translate button, the composite photo
at the upload's size, a gallery of the face crops, the faces left out with their reason, and the model's
settings. The photo goes through the same faces, translator and paste-back as ``pda-train translate``.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import numpy as np

from pda_data.curation.options import CurateOptions
from pda_data.faces.detection import Detector
from pda_data.faces.landmarks import Landmarker
from pda_train.inference.backends import Backend
from pda_train.inference.faces import find_faces
from pda_train.inference.paste import paste_faces
from pda_train.inference.translate import translate_crops

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on at ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def translate_upload(
    backend: Backend, detector: Detector, landmarker: Landmarker, options: CurateOptions, photo: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], str]:
    """One uploaded RGB photo -> (composite of the photo's size, anime crops largest first, a summary)."""
    photo = np.ascontiguousarray(photo[..., :3])  # an RGBA upload loses its alpha
    kept, skipped = find_faces(photo, detector, landmarker, options)
    animes = [t.anime for t in translate_crops(backend, [f.crop for f in kept], [f.points for f in kept])]
    composite = paste_faces(photo, animes, [f.affine for f in kept]).image
    lines = [f"{len(kept)} face(s) translated, {len(skipped)} left out"]
    lines += [f"- {s.message()}" for s in skipped]
    return composite, animes, "\n".join(lines)


def build_app(backend: Backend, detector: Detector, landmarker: Landmarker, options: CurateOptions) -> Any:
    """The Gradio Blocks page (not launched)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    def run(photo: np.ndarray | None) -> tuple[Any, list[np.ndarray], str]:
        if photo is None:
            return None, [], "upload a photo first"
        return translate_upload(backend, detector, landmarker, options, photo)

    with gr.Blocks(title="PDA portrait-to-anime") as app:
        gr.Markdown("# PDA portrait-to-anime\nUpload a photo: every frontal face is translated and pasted "
                    "back.")
        with gr.Row():
            photo = gr.Image(type="numpy", label="photo", elem_id="photo", sources=["upload"])
            composite = gr.Image(type="numpy", label="composite", elem_id="composite", interactive=False,
                                 format="png")
        button = gr.Button("Translate", variant="primary", elem_id="translate")
        summary = gr.Textbox(label="faces", elem_id="summary", interactive=False)
        crops = gr.Gallery(label="anime faces", elem_id="crops", columns=6, height=220, format="png")
        with gr.Accordion("model settings", open=True):
            gr.JSON({"backend": backend.name, **backend.settings}, elem_id="settings")
        button.click(run, inputs=photo, outputs=[composite, crops, summary])
    return app


def serve(app: Any, port: int = 0) -> str:
    """Launch ``app`` on 127.0.0.1 at ``port`` (0: a free one) without blocking; returns its URL."""
    import gradio as gr

    port = port or free_port()
    theme = gr.themes.Base(font=["sans-serif"], font_mono=["monospace"])  # no web fonts: works offline
    app.launch(server_name=HOST, server_port=port, share=False, prevent_thread_lock=True, quiet=True,
               theme=theme)
    return f"http://{HOST}:{port}/"

"""Parity and accuracy of exported graphs against the FP32 PyTorch model, on real windows.

:func:`measure_parity` runs a format's three graph files through a runtime backend
(:mod:`edge_emotion.runtimes`, the SDK's own) and the PyTorch model on the same real calibration
windows, and reports per graph the max abs (and relative) difference of its output and how often
the predicted label agrees with the all-FP32 model:

- encoders: the exported embeddings / audio steps go through the **FP32** PyTorch fusion head, so
  the agreement measures what the encoder's error does to the label (windows that use that
  modality only);
- fusion head: the exported head on the FP32 encoders' outputs;
- end to end: all three exported graphs, as the SDK runs them.

:func:`measure_accuracy` gives the accuracy on a labelled eval set for the exported graphs and for
PyTorch, per modality (audio windows alone, face stills alone), so that a drop is visible.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_emotion.model.formats import AUDIO_ENCODER, FUSION_HEAD, GRAPH_INPUTS, GRAPH_OUTPUTS, VISUAL_ENCODER

from .calibration import CalibrationSet, batches, fusion_inputs
from .reference import reference_name, reference_outputs

logger = logging.getLogger(__name__)


class _Graphs:
    """The three exported graphs on one runtime, run in batches, computing in the format's
    ``precision`` (``fp32``, ``fp16``, ``int8``) as the SDK does."""

    def __init__(
        self,
        files: Mapping[str, str | Path],
        runtime: str,
        threads: int | None,
        batch_size: int,
        device: str | None,
        precision: str = "fp32",
    ):
        from edge_emotion.runtimes import format_options, load_backend

        options = {"threads": threads} if threads is not None and runtime in ("onnxruntime", "openvino") else {}
        options.update(format_options(runtime, precision))
        if runtime == "torch":
            options["trusted"] = True  # programs this export wrote, not a bundle from elsewhere
        self.backends = {g: load_backend(runtime, files[g], device=device, **options) for g in files}
        self.batch_size = batch_size

    @property
    def inference_precision(self) -> str:
        """What the runtime reported computing in (``"as stored"`` for runtimes without a setting)."""
        from edge_emotion.bench.machine import AS_STORED

        found = [getattr(b, "inference_precision", None) for b in self.backends.values()]
        found = list(dict.fromkeys(p for p in found if p is not None))
        return "/".join(found) or AS_STORED

    def __call__(self, graph: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
        output = GRAPH_OUTPUTS[graph][0]
        parts = [self.backends[graph].run(b)[output] for b in batches(inputs, self.batch_size)]
        return np.concatenate(parts).astype(np.float32)


def _torch(model, graph: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The reference's output (the PyTorch model, or a :class:`~.reference.GraphReference`)."""
    return reference_outputs(model, {graph: {name: inputs[name] for name in GRAPH_INPUTS[graph]}})[graph][
        GRAPH_OUTPUTS[graph][0]
    ]


def _diff(got: np.ndarray, want: np.ndarray) -> dict[str, float]:
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    scale = float(np.max(np.abs(want))) or 1.0
    return {
        "max_abs_diff": float(err.max()),
        "mean_abs_diff": float(err.mean()),
        "max_rel_diff": float(err.max() / scale),
    }


def _agreement(got_logits: np.ndarray, want_logits: np.ndarray, keep: np.ndarray) -> float | None:
    if not keep.any():
        return None
    return float(np.mean(got_logits[keep].argmax(1) == want_logits[keep].argmax(1)))


def measure_parity(
    model,
    files: Mapping[str, str | Path],
    runtime: str,
    calibration: CalibrationSet,
    threads: int | None = None,
    batch_size: int = 16,
    device: str | None = None,
    seed: int = 0,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Parity of ``files`` (``{graph: path}``) of a format of ``precision`` on ``runtime`` against
    ``model`` (FP32 PyTorch, or a :class:`~.reference.GraphReference`) on the real windows of
    ``calibration``; see the module docstring. Returns a JSON-able dict, which also names the
    precision the runtime computed in and the CPU (model and instruction-set features) it ran on."""
    from edge_emotion.bench.machine import machine_record

    run = _Graphs(files, runtime, threads, batch_size, device, precision)
    preset = model.preset
    via = reference_name(model, short=True)
    report: dict[str, Any] = {
        "reference": reference_name(model),
        "runtime": runtime,
        "inference_precision": run.inference_precision,
        "machine": machine_record(),
        "inputs": f"real windows: {calibration.n_audio} log-mel windows, {calibration.n_faces} face crops",
        "graphs": {},
    }
    emb_ref = (
        _torch(model, VISUAL_ENCODER, {"face": calibration.faces})
        if calibration.n_faces
        else np.zeros((0, preset.model.visual_dim), np.float32)
    )
    steps_ref = (
        _torch(model, AUDIO_ENCODER, {"log_mel": calibration.log_mel})
        if calibration.n_audio
        else np.zeros((0, preset.audio_steps, preset.model.audio_dim), np.float32)
    )
    emb = run(VISUAL_ENCODER, {"face": calibration.faces}) if calibration.n_faces else emb_ref
    steps = run(AUDIO_ENCODER, {"log_mel": calibration.log_mel}) if calibration.n_audio else steps_ref

    def windows(audio_steps, embeddings):
        return fusion_inputs(preset, audio_steps, calibration.speech, embeddings, seed)

    reference = windows(steps_ref, emb_ref)
    pattern = np.array(reference.pattern)
    logits_ref = _torch(model, FUSION_HEAD, reference.inputs)
    uses_video = pattern != "audio"
    uses_audio = pattern != "video"
    if calibration.n_faces:
        via_visual = _torch(model, FUSION_HEAD, windows(steps_ref, emb).inputs)
        report["graphs"][VISUAL_ENCODER] = {
            **_diff(emb, emb_ref),
            "label_agreement": _agreement(via_visual, logits_ref, uses_video),
            "label_agreement_via": f"{via} fusion head, windows with faces",
            "samples": int(calibration.n_faces),
        }
    if calibration.n_audio:
        via_audio = _torch(model, FUSION_HEAD, windows(steps, emb_ref).inputs)
        report["graphs"][AUDIO_ENCODER] = {
            **_diff(steps, steps_ref),
            "label_agreement": _agreement(via_audio, logits_ref, uses_audio),
            "label_agreement_via": f"{via} fusion head, windows with audio",
            "samples": int(calibration.n_audio),
        }
    logits = run(FUSION_HEAD, reference.inputs)
    everything = np.ones(len(pattern), bool)
    report["graphs"][FUSION_HEAD] = {
        **_diff(logits, logits_ref),
        "label_agreement": _agreement(logits, logits_ref, everything),
        "samples": len(pattern),
    }
    end_to_end = run(FUSION_HEAD, windows(steps, emb).inputs)
    report["end_to_end"] = {
        "label_agreement": _agreement(end_to_end, logits_ref, everything),
        "max_abs_diff_logits": _diff(end_to_end, logits_ref)["max_abs_diff"],
        "windows": {p: int((pattern == p).sum()) for p in sorted(set(reference.pattern))},
    }
    return report


def _single_modality(
    preset, audio_steps: np.ndarray | None, speech: np.ndarray | None, embeddings: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Fusion inputs for windows of one modality: audio windows with no face, or still faces
    (the face on every frame) with no audio."""
    from edge_emotion.frontend.align import align_encoded

    t_a, t_v = preset.audio_steps, preset.video_frames
    d_a, d_v = preset.model.audio_dim, preset.model.visual_dim
    if audio_steps is not None:
        n = len(audio_steps)
        frames, face_mask, audio_mask = np.zeros((n, t_v, d_v), np.float32), np.zeros((n, t_v), np.float32), speech
    else:
        n = len(embeddings)
        audio_steps, audio_mask = (
            np.zeros((n, t_a, d_a), np.float32),
            np.zeros((n, preset.model.time_steps), np.float32),
        )
        frames, face_mask = np.repeat(embeddings[:, None], t_v, axis=1), np.ones((n, t_v), np.float32)
    audio, visual, a_mask, v_mask = align_encoded(preset, audio_steps, frames, face_mask, audio_mask)
    return {"audio": audio, "visual": visual, "audio_mask": a_mask, "visual_mask": v_mask}


def measure_accuracy(
    model,
    files: Mapping[str, str | Path],
    runtime: str,
    eval_set: CalibrationSet,
    threads: int | None = None,
    batch_size: int = 16,
    device: str | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Accuracy on the labelled windows of ``eval_set`` (labels from the file names), per
    modality, for the exported graphs (a format of ``precision``) and for PyTorch FP32.
    Unlabelled windows are left out."""
    run = _Graphs(files, runtime, threads, batch_size, device, precision)
    preset = model.preset
    result: dict[str, Any] = {}
    audio_keep = eval_set.audio_labels >= 0
    if audio_keep.any():
        log_mel, speech, labels = (
            eval_set.log_mel[audio_keep],
            eval_set.speech[audio_keep],
            eval_set.audio_labels[audio_keep],
        )
        exported = run(FUSION_HEAD, _single_modality(preset, run(AUDIO_ENCODER, {"log_mel": log_mel}), speech, None))
        ref = _torch(
            model,
            FUSION_HEAD,
            _single_modality(preset, _torch(model, AUDIO_ENCODER, {"log_mel": log_mel}), speech, None),
        )
        result["audio"] = {
            "windows": int(len(labels)),
            "accuracy": float(np.mean(exported.argmax(1) == labels)),
            "accuracy_pytorch": float(np.mean(ref.argmax(1) == labels)),
        }
    face_keep = eval_set.face_labels >= 0
    if face_keep.any():
        faces, labels = eval_set.faces[face_keep], eval_set.face_labels[face_keep]
        exported = run(FUSION_HEAD, _single_modality(preset, None, None, run(VISUAL_ENCODER, {"face": faces})))
        ref = _torch(
            model, FUSION_HEAD, _single_modality(preset, None, None, _torch(model, VISUAL_ENCODER, {"face": faces}))
        )
        result["video"] = {
            "faces": int(len(labels)),
            "accuracy": float(np.mean(exported.argmax(1) == labels)),
            "accuracy_pytorch": float(np.mean(ref.argmax(1) == labels)),
        }
    return {"runtime": runtime, "metric": "top-1 accuracy per modality", **result}


__all__ = ["measure_parity", "measure_accuracy"]

"""Convert the carried BlazeFace model (``edge_emotion/assets/face_detection_short_range.tflite``)
to ONNX (``face_detection_short_range.onnx`` beside it), the network that
``edge_emotion.frontend.blazeface`` runs through ONNX Runtime or OpenVINO.

    pip install tflite2onnx          # a converter for this one step; the SDK never imports it
    python tools/convert_face_detector.py [--check]

``--check`` (needs ``openvino``, which reads ``.tflite`` files itself) runs both files on the same
random inputs and stops with an error unless every output agrees within 1e-3. The ONNX file's
sha256 is printed for ``edge_emotion/assets/LICENSE-mediapipe.txt``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "edge_emotion" / "assets"
TFLITE = ASSETS / "face_detection_short_range.tflite"
ONNX = ASSETS / "face_detection_short_range.onnx"


def convert(src: Path, dst: Path) -> None:
    import tflite2onnx

    tflite2onnx.convert(str(src), str(dst))


def largest_difference(tflite: Path, onnx: Path, samples: int = 16) -> float:
    """The largest absolute difference between the two files' outputs on ``samples`` random
    inputs in [-1, 1], both run by OpenVINO in FP32."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    a = core.compile_model(core.read_model(str(tflite)), "CPU", config)
    b = core.compile_model(core.read_model(str(onnx)), "CPU", config)
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(samples):
        nhwc = rng.uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
        out_a = a({0: nhwc})
        out_b = b({0: np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))})
        for port_a in a.outputs:
            port_b = next(p for p in b.outputs if p.get_any_name() == port_a.get_any_name())
            worst = max(worst, float(np.abs(out_a[port_a] - out_b[port_b]).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=TFLITE)
    parser.add_argument("--out", type=Path, default=ONNX)
    parser.add_argument("--check", action="store_true", help="compare the two files' outputs (needs openvino)")
    args = parser.parse_args()
    convert(args.src, args.out)
    print(f"{args.out}: sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")
    if args.check:
        worst = largest_difference(args.src, args.out)
        print(f"largest output difference, .tflite vs .onnx: {worst:.2e}")
        if worst > 1e-3:
            sys.exit("the converted network differs from the original")


if __name__ == "__main__":
    main()

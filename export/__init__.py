"""Export side of edge-emotion (installed as ``edge_emotion.export``; needs the ``export`` extra):
torch -> ONNX (three graphs) -> INT8 / FP16, OpenVINO IR, TensorRT engines, with parity checks."""

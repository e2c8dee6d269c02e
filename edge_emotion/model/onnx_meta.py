"""What an ``.onnx`` file would make a runtime read besides itself, found without the onnx package.

An ONNX tensor (an initializer, a ``Constant`` node's value, a tensor in a subgraph or a function)
may keep its bytes in another file: ``data_location = EXTERNAL`` and an ``external_data`` entry
``location`` relative to the model's folder. ONNX Runtime and OpenVINO open that file when they
load the graph, so a bundle must list and hash it like the graph itself
(:mod:`edge_emotion.model.bundle`). This module walks the protobuf wire format of the fields that
can hold tensors and returns every such location; raw weights are skipped, not copied.
"""

from __future__ import annotations

from pathlib import Path

# Field numbers of onnx.proto (onnx/onnx.proto3) on the paths that lead to tensors.
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS = 5, 6, 10, 11, 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_FUNCTION_NODE = 7
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 13, 14
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_EXTERNAL = 1
#: Subgraphs nest (If / Loop / Scan bodies); deeper than this is not a graph anyone exports.
_MAX_DEPTH = 64


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed ONNX protobuf."""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise OnnxFormatError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: memoryview):
    """Yield ``(field_number, wire_type, value)``: an int for varints, a memoryview for
    length-delimited fields; fixed-width fields are skipped."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise OnnxFormatError("a field runs past the end of its message")
            yield number, wire, data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise OnnxFormatError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise OnnxFormatError("a fixed-width field runs past the end of its message")


def _tensor(data: memoryview, found: list[str]) -> None:
    location, external = None, False
    for number, wire, value in _fields(data):
        if number == _TENSOR_DATA_LOCATION and wire == 0:
            external = external or value == _EXTERNAL
        elif number == _TENSOR_EXTERNAL_DATA and wire == 2:
            external = True
            key = entry_value = None
            for n, w, v in _fields(value):
                if w == 2 and n == _ENTRY_KEY:
                    key = bytes(v).decode("utf-8", "replace")
                elif w == 2 and n == _ENTRY_VALUE:
                    entry_value = bytes(v).decode("utf-8", "replace")
            if key == "location":
                location = entry_value
    if external:
        found.append(location if location is not None else "")


def _sparse(data: memoryview, found: list[str]) -> None:
    for number, wire, value in _fields(data):
        if wire == 2 and number in (_SPARSE_VALUES, _SPARSE_INDICES):
            _tensor(value, found)


def _node(data: memoryview, found: list[str], depth: int) -> None:
    for number, wire, value in _fields(data):
        if number != _NODE_ATTRIBUTE or wire != 2:
            continue
        for n, w, v in _fields(value):
            if w != 2:
                continue
            if n in (_ATTR_T, _ATTR_TENSORS):
                _tensor(v, found)
            elif n in (_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS):
                _sparse(v, found)
            elif n in (_ATTR_G, _ATTR_GRAPHS):
                _graph(v, found, depth + 1)


def _graph(data: memoryview, found: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise OnnxFormatError(f"subgraphs nest deeper than {_MAX_DEPTH}")
    for number, wire, value in _fields(data):
        if wire != 2:
            continue
        if number == _GRAPH_INITIALIZER:
            _tensor(value, found)
        elif number == _GRAPH_SPARSE_INITIALIZER:
            _sparse(value, found)
        elif number == _GRAPH_NODE:
            _node(value, found, depth)


def external_data_locations(path: str | Path) -> list[str]:
    """The ``location`` of every tensor in the ONNX model at ``path`` whose data lives in another
    file, in the order met (repeats kept out); ``""`` for an external tensor without a location.
    Raises :class:`OnnxFormatError` for bytes that are not an ONNX protobuf."""
    data = memoryview(Path(path).read_bytes())
    found: list[str] = []
    for number, wire, value in _fields(data):
        if wire != 2:
            continue
        if number == _MODEL_GRAPH:
            _graph(value, found, 0)
        elif number == _MODEL_FUNCTIONS:
            for n, w, v in _fields(value):
                if n == _FUNCTION_NODE and w == 2:
                    _node(v, found, 0)
    return list(dict.fromkeys(found))


__all__ = ["OnnxFormatError", "external_data_locations"]

"""torch backend: runs a ``.pt2`` program written by ``torch.export.save`` (the bundle's ``torch``
format) — the PyTorch reference without the training code. Needs the ``train`` extra (torch).

The program's input and output names come from the file's sidecar ``<graph>.json``
(``{"inputs": [{"name", "shape", "dtype"}], "outputs": [...]}``), written by the exporter beside it.

A ``.pt2`` archive is code, not data: ``torch.export.load`` unpickles tensors marked for pickle (and
falls back to a full unpickle of the example inputs), its graph's symbolic shapes go through
``sympy.sympify`` (``eval``), and ``.module()`` ``exec``s the archive's guard code. So this backend
runs a program only when the caller says it trusts the file (``trusted=True``; for a bundle,
``BundleModel.from_bundle(..., trust_code=True)``), and even then it first inspects the archive
(:func:`inspect_pt2`: only the entries ``torch.export.save`` writes for plain tensors, no pickled
weights or constants, no custom objects, compiled AOTInductor code or extra files) and loads it
without any unpickling (:func:`load_program`: the example inputs are never read).
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edge_emotion.errors import BackendError

from .base import TensorSpec, import_runtime, prepare_inputs

logger = logging.getLogger(__name__)


def signature_path(graph_path: Path) -> Path:
    """The sidecar that names a ``.pt2`` program's tensors: ``visual_encoder.pt2`` -> ``visual_encoder.json``."""
    return graph_path.with_suffix(".json")


def read_signature(graph_path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    path = signature_path(graph_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        specs = [
            tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in data[key])
            for key in ("inputs", "outputs")
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackendError(f"torch: cannot read the tensor names of {graph_path} from {path}: {exc}") from None
    return specs[0], specs[1]


#: The largest ``.pt2`` archive read (the paper preset's visual encoder is about 45 MB).
MAX_ARCHIVE_BYTES = 2 << 30
_MODEL = "model"
_FIXED_ENTRIES = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
_TENSOR_CONSTANT_PREFIX = "tensor_"


def _config(archive: zipfile.ZipFile, names: dict[str, str], entry: str, graph_path: Path) -> dict:
    try:
        config = json.loads(archive.read(names[entry]))["config"]
        if not isinstance(config, dict):
            raise TypeError("config is not an object")
        return config
    except (KeyError, ValueError, TypeError) as exc:
        raise BackendError(f"torch: {graph_path}: {entry} is missing or unreadable ({exc})") from None


def inspect_pt2(data: bytes, graph_path: Path) -> None:
    """Refuse a ``.pt2`` archive (its bytes) holding anything but one program's JSON graph and
    plain tensors: an entry ``torch.export.save`` does not write for such a program, a weight or
    constant marked ``use_pickle``, a constant that is not a tensor (custom or opaque objects are
    pickles), AOTInductor code or extra files. Raises :class:`BackendError` naming the entry."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        raw_names = archive.namelist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise BackendError(f"torch: {graph_path} is not a .pt2 archive ({exc})") from None
    prefixes = {name.split("/", 1)[0] for name in raw_names}
    if len(prefixes) != 1 or any("/" not in name for name in raw_names):
        raise BackendError(f"torch: {graph_path} is not a .pt2 archive (entries outside one top folder)")
    names = {name.split("/", 1)[1]: name for name in raw_names}
    weights_config = f"data/weights/{_MODEL}_weights_config.json"
    constants_config = f"data/constants/{_MODEL}_constants_config.json"
    allowed = _FIXED_ENTRIES | {f"models/{_MODEL}.json", weights_config, constants_config}
    allowed.add(f"data/sample_inputs/{_MODEL}.pt")  # a pickle; present in every archive, never read
    for kind, entry in (("weights", weights_config), ("constants", constants_config)):
        for fqn, meta in _config(archive, names, entry, graph_path).items():
            if not isinstance(meta, dict) or meta.get("use_pickle") is not False or not meta.get("tensor_meta"):
                raise BackendError(
                    f"torch: {graph_path} stores {kind[:-1]} {fqn!r} as a pickle; pickles are never loaded"
                )
            path_name = str(meta.get("path_name", ""))
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", path_name) or (
                kind == "constants" and not path_name.startswith(_TENSOR_CONSTANT_PREFIX)
            ):
                raise BackendError(f"torch: {graph_path}: {kind[:-1]} {fqn!r} is not a plain tensor ({path_name!r})")
            allowed.add(f"data/{kind}/{path_name}")
    unexpected = sorted(set(names) - allowed)
    if unexpected:
        raise BackendError(
            f"torch: {graph_path} holds entries a plain exported program does not ({', '.join(unexpected[:5])}); "
            "pickles, compiled code and extra files are never loaded"
        )
    if f"models/{_MODEL}.json" not in names:
        raise BackendError(f"torch: {graph_path} holds no program models/{_MODEL}.json")


def load_program(torch, data: bytes, graph_path: Path):
    """The ``ExportedProgram`` in a ``.pt2`` archive's bytes, built from its JSON graph and its
    plain tensors without unpickling anything (call :func:`inspect_pt2` first). Uses torch's
    archive reader and deserializer (private modules of torch 2.x)."""
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _bytes_to_dataclass
    from torch.export.pt2_archive._package import PT2ArchiveReader, _load_constants, _load_state_dict

    with PT2ArchiveReader(io.BytesIO(data)) as reader:
        serialized = _bytes_to_dataclass(schema.ExportedProgram, reader.read_bytes(f"models/{_MODEL}.json"))
        state_dict = _load_state_dict(reader, _MODEL)  # no use_pickle entry: only raw tensor records
        constants = _load_constants(reader, _MODEL)
    # b"": no example inputs (they are a pickle in the archive)
    return ExportedProgramDeserializer(None).deserialize(serialized, state_dict, constants, b"")


class TorchBackend:
    """One ``torch.export`` program. ``device``: ``cpu`` (default) or ``cuda[:N]``;
    ``threads``: torch's intra-op threads (process-wide, as torch has no per-model setting).
    ``trusted``: the file comes from a source trusted to run code here (see the module's
    docstring); without it the program is inspected and then refused."""

    name = "torch"

    def __init__(
        self, graph_path: str | Path, device: str | None = None, threads: int | None = None, trusted: bool = False
    ):
        self.torch = import_runtime("torch", "torch", "train", "the torch backend")
        self.graph_path = Path(graph_path)
        self.device = device or "cpu"
        size = self.graph_path.stat().st_size
        if size > MAX_ARCHIVE_BYTES:
            raise BackendError(f"torch: {self.graph_path} is {size} bytes, over the {MAX_ARCHIVE_BYTES} read")
        data = self.graph_path.read_bytes()
        inspect_pt2(data, self.graph_path)
        if not trusted:
            raise BackendError(
                f"torch: {self.graph_path} is a .pt2 program, which carries code that runs when it is loaded; "
                "edge-emotion runs one only from a bundle you trust (BundleModel.from_bundle(..., trust_code=True))"
            )
        self.input_specs, self.output_specs = read_signature(self.graph_path)
        if threads is not None:
            self.torch.set_num_threads(threads)
        self.threads = threads
        try:
            program = load_program(self.torch, data, self.graph_path)
            self.module = program.module().to(self.device)
        except Exception as exc:  # torch raises many kinds for a bad file or device
            raise BackendError(f"torch could not load {self.graph_path} on {self.device}: {exc}") from exc
        logger.debug("torch loaded %s on %s", self.graph_path, self.device)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named inputs -> named outputs; shapes and dtypes as in :attr:`input_specs`."""
        feed = prepare_inputs(self.input_specs, inputs, self.graph_path.stem)
        torch = self.torch
        args = [torch.from_numpy(feed[spec.name]).to(self.device) for spec in self.input_specs]
        with torch.inference_mode():
            result = self.module(*args)
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        return {spec.name: out.detach().cpu().numpy() for spec, out in zip(self.output_specs, outputs, strict=True)}

"""Small real bundles for tests that need a model but not a trained one.

``make_bundle(tmp_path)`` builds a freshly initialised, seeded model, exports it through the real
writer (:func:`edge_emotion.export.bundle_writer.write_bundle`) and returns a private copy of the
bundle under ``tmp_path``. Each (preset, seed, formats) is exported once per process and copied
afterwards (a copy takes milliseconds, an export of the edge preset a few seconds), so tests may
alter their copy freely. Needs torch and onnx (the ``train`` and ``export`` extras).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_CACHE: dict[tuple, Path] = {}
_CACHE_ROOT: list[Path] = []


def fresh_model(preset: str = "edge", seed: int = 0, randomize_norms: bool = True):
    """A seeded, freshly initialised ``EmotionModel`` in eval mode.

    ``randomize_norms``: give every BatchNorm/LayerNorm random affine parameters and running
    statistics. A fresh ResNet zero-initialises each residual branch's last BN (every block starts
    as the identity), which would let a broken branch pass a parity test; random norms make every
    layer count, as in a trained model.
    """
    import torch
    from edge_emotion.train.model import build_model
    from torch import nn

    torch.manual_seed(seed)
    model = build_model(preset)
    if randomize_norms:
        generator = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
                    n = module.weight.shape
                    module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                    module.bias.copy_(0.2 * torch.randn(n, generator=generator))
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                    module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return model.eval()


def _cache_root() -> Path:
    if not _CACHE_ROOT:
        root = Path(tempfile.mkdtemp(prefix="edge-emotion-fake-bundles-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _CACHE_ROOT.append(root)
    return _CACHE_ROOT[0]


def make_bundle(
    tmp_path: str | Path, preset: str = "edge", seed: int = 0, formats: tuple[str, ...] = ("onnx",)
) -> Path:
    """A real bundle of a fresh model (:func:`fresh_model`) at ``tmp_path/bundle-<preset>-<seed>-<formats>``,
    with ``formats`` (keys of :data:`edge_emotion.model.formats.FORMATS`; ``("onnx", "torch")`` adds the
    torch reference). Returns the bundle directory, which the caller owns."""
    key = (preset, seed, tuple(formats))
    if key not in _CACHE or not (_CACHE[key] / "manifest.json").is_file():
        from edge_emotion.export.bundle_writer import write_bundle

        provenance = {
            "training_data": f"none: freshly initialised weights (seed {seed}), for tests",
            "split_protocol": None,
            "metrics": {},
            "command": "tests/fakes.py make_bundle",
        }
        target = _cache_root() / f"{preset}-{seed}-{'+'.join(formats)}"
        _CACHE[key] = write_bundle(
            fresh_model(preset, seed), target, provenance, formats=formats, name=f"fake-{preset}-{seed}", overwrite=True
        )
    out = Path(tmp_path) / f"bundle-{preset}-{seed}-{'+'.join(formats)}"
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(_CACHE[key], out)
    return out


__all__ = ["fresh_model", "make_bundle"]

"""The paper's model: the factored Tucker fusion against the literal algorithms A1 + A2, the three
modules' shapes for both presets, and missing modalities."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the model tests need the 'train' extra (torch)")

from edge_emotion.train.fusion import (  # noqa: E402
    CrossModalAttention,
    TuckerFusion,
    build_cross_modal_tensor,
    tucker_fusion_literal,
    tucker_fusion_materialized,
)
from edge_emotion.train.model import build_model  # noqa: E402
from edge_emotion.train.resnet import ResNet18  # noqa: E402

from edge_emotion.config import EDGE, PAPER, PRESETS, ModelConfig, PresetConfig  # noqa: E402


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm().clamp_min(1e-300))


@pytest.mark.parametrize(
    "n, t, d_a, d_v, ranks",
    [(3, 7, 5, 6, (2, 3, 4)), (2, 12, 9, 9, (12, 9, 9)), (4, 10, 16, 8, (3, 5, 2))],
)
def test_factored_tucker_matches_literal_a1_a2_outputs_and_gradients(n, t, d_a, d_v, ranks):
    torch.manual_seed(0)
    layer = TuckerFusion(t, d_a, d_v, ranks).double()
    audio = torch.randn(n, t, d_a, dtype=torch.float64, requires_grad=True)
    visual = torch.randn(n, t, d_v, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(n, *ranks, dtype=torch.float64)  # a random downstream loss

    factored = layer(audio, visual)
    assert factored.shape == (n, *ranks)
    grads_factored = torch.autograd.grad((factored * weights).sum(), [audio, visual, *layer.parameters()])

    literal = tucker_fusion_literal(audio, visual, layer.U_T, layer.U_A, layer.U_V)
    grads_literal = torch.autograd.grad((literal * weights).sum(), [audio, visual, *layer.parameters()])

    assert _relative_error(factored, literal) < 1e-5
    for name, g_f, g_l in zip(["audio", "visual", "U_T", "U_A", "U_V"], grads_factored, grads_literal, strict=True):
        assert _relative_error(g_f, g_l) < 1e-5, name


def test_literal_tensor_is_the_stack_of_per_step_outer_products():
    audio, visual = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64)
    x = build_cross_modal_tensor(audio, visual)
    assert x.shape == (2, 3, 4, 5)
    assert torch.allclose(x[1, 2], torch.outer(audio[1, 2], visual[1, 2]))
    layer = TuckerFusion(3, 4, 5, (2, 2, 3)).double()
    assert torch.allclose(
        tucker_fusion_materialized(audio, visual, layer.U_T, layer.U_A, layer.U_V),
        tucker_fusion_literal(audio, visual, layer.U_T, layer.U_A, layer.U_V),
    )


def test_tucker_factor_matrices_are_named_and_shaped_as_in_the_paper():
    layer = TuckerFusion(60, 256, 512, (8, 32, 16))
    assert layer.U_T.shape == (60, 8)
    assert layer.U_A.shape == (256, 32)
    assert layer.U_V.shape == (512, 16)


def test_resnet18_has_the_architecture_of_resnet18():
    net = ResNet18(width=64)
    # torchvision's resnet18 has 11,689,512 parameters, of which the 1000-way fc is 513,000.
    assert sum(p.numel() for p in net.parameters()) == 11_689_512 - 513_000
    kernel_sizes = {m.kernel_size for m in net.modules() if isinstance(m, torch.nn.Conv2d)}
    assert kernel_sizes == {(7, 7), (3, 3), (1, 1)}
    out = net.eval()(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 512)


def test_resnet18_without_the_stem_pool_keeps_its_weights_and_doubles_the_grid():
    pooled, unpooled = ResNet18(width=16), ResNet18(width=16, stem_pool=False)
    assert [p.shape for p in pooled.parameters()] == [p.shape for p in unpooled.parameters()]
    x = torch.randn(2, 3, 64, 64)

    def last_stage_grid(net):
        y = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return net.layer4(net.layer3(net.layer2(net.layer1(y)))).shape[-2:]

    with torch.no_grad():
        assert last_stage_grid(pooled.eval()) == (2, 2)
        assert last_stage_grid(unpooled.eval()) == (4, 4)
        assert unpooled(x).shape == pooled(x).shape == (2, 128)


def test_the_stem_pool_follows_the_preset_and_old_presets_keep_it():
    assert PAPER.model.visual_stem_pool and not EDGE.model.visual_stem_pool
    assert isinstance(build_model(EDGE).visual.maxpool, torch.nn.Identity)
    assert isinstance(build_model(PAPER).visual.maxpool, torch.nn.MaxPool2d)
    # A preset written before the field existed (a bundle's manifest, a checkpoint) had the pool.
    old = EDGE.to_dict()
    del old["model"]["visual_stem_pool"]
    assert PresetConfig.from_dict(old).model.visual_stem_pool is True


@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=list(PRESETS))
def test_modules_produce_the_shapes_the_preset_promises(preset: PresetConfig):
    model = build_model(preset).eval()
    m, n = preset.model, 2
    with torch.no_grad():
        faces = torch.randn(n, 3, preset.visual.crop_size, preset.visual.crop_size)
        assert model.visual(faces).shape == (n, m.visual_dim)
        log_mel = torch.randn(n, 1, preset.audio.n_mels, preset.audio.n_frames)
        audio_seq = model.audio(log_mel)
        assert audio_seq.shape == (n, preset.audio_steps, m.audio_dim)
        logits = model.fusion(
            torch.randn(n, m.time_steps, m.audio_dim),
            torch.randn(n, m.time_steps, m.visual_dim),
            torch.ones(n, m.time_steps),
            torch.ones(n, m.time_steps),
        )
        assert logits.shape == (n, len(preset.labels))


def test_paper_preset_has_the_appendix_sizes():
    assert PAPER.visual.crop_size == 224 and PAPER.model.visual_dim == 512
    assert (PAPER.audio.n_mels, PAPER.audio.n_frames) == (128, 256)
    assert PAPER.video_frames == 90
    assert PAPER.model.d_model == 256 and PAPER.model.heads == 4 and PAPER.model.audio_dim == 128
    assert PAPER.model.dropout == 0.5
    assert EDGE.model.dropout == 0.5


def test_full_model_forward_runs_end_to_end_on_the_edge_preset():
    model = build_model("edge").eval()
    p = model.preset
    n = 2
    with torch.no_grad():
        logits = model(
            torch.randn(n, 1, p.audio.n_mels, p.audio.n_frames),
            torch.randn(n, p.video_frames, 3, p.visual.crop_size, p.visual.crop_size),
            torch.ones(n, p.video_frames),
            torch.ones(n, p.model.time_steps),
        )
    assert logits.shape == (n, 8) and torch.isfinite(logits).all()


def _fusion_inputs(config: ModelConfig, n: int = 3):
    torch.manual_seed(1)
    t = config.time_steps
    return torch.randn(n, t, config.audio_dim), torch.randn(n, t, config.visual_dim)


def test_absent_modality_does_not_influence_the_answer():
    """With the visual mask at 0, whatever sits in the visual input must not change the logits,
    and the audio alone still moves them (the [a;1] ⊗ [v;1] product keeps a)."""
    model = build_model("edge").eval()
    cfg = model.preset.model
    audio, visual = _fusion_inputs(cfg)
    ones, zeros = torch.ones(3, cfg.time_steps), torch.zeros(3, cfg.time_steps)
    with torch.no_grad():
        a = model.fusion(audio, visual, ones, zeros)
        b = model.fusion(audio, torch.randn_like(visual) * 10, ones, zeros)
        c = model.fusion(torch.randn_like(audio), visual, ones, zeros)
        none = model.fusion(audio, visual, zeros, zeros)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-3)
    assert torch.isfinite(none).all()


def test_masked_keys_get_no_attention_and_all_masked_gives_zero_context():
    attention = CrossModalAttention(16, 4, dropout=0.0).eval()
    torch.manual_seed(2)
    query, key = torch.randn(2, 5, 16), torch.randn(2, 6, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.float32)
    with torch.no_grad():
        out = attention(query, key, mask)
        key_changed = key.clone()
        key_changed[:, 3:] = 100.0
        out_changed = attention(query, key_changed, mask)
    assert torch.allclose(out[0], out_changed[0], atol=1e-5)
    # No valid key: the context is zero, so the output is the output projection's bias.
    assert torch.allclose(out[1], attention.out.bias.expand(5, 16), atol=1e-6)


def test_preset_config_round_trips_through_a_dict():
    for preset in PRESETS.values():
        assert PresetConfig.from_dict(preset.to_dict()) == preset
    with pytest.raises(ValueError):
        PresetConfig.from_dict({**PAPER.to_dict(), "model": {**PAPER.to_dict()["model"], "bogus": 1}})


def test_an_init_checkpoint_from_before_the_stem_pool_field_loads_by_its_default(tmp_path):
    import dataclasses

    from edge_emotion.train.checkpoint import save_checkpoint
    from edge_emotion.train.trainer import _load_init

    from edge_emotion.errors import InputError

    pooled = EDGE.replace(model=dataclasses.replace(EDGE.model, visual_stem_pool=True))
    path = tmp_path / "old.pt"
    save_checkpoint(path, build_model(pooled), train_config={}, stage="audio", epoch=0)
    state = torch.load(path, weights_only=True)
    del state["preset"]["model"]["visual_stem_pool"]  # as written before the field existed
    torch.save(state, path)
    _load_init(build_model(pooled), path)  # the missing field means the pool, as it did then
    with pytest.raises(InputError, match=r"model\.visual_stem_pool: True -> False"):
        _load_init(build_model(EDGE), path)  # pooled weights never load silently into the new stem

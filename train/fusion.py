"""The fusion head of appendices A.3 and B: cross-modal attention, Tucker fusion, GRU, classifier.

:class:`TuckerFusion` computes algorithm A1 + A2 (the 4th-order tensor of per-step outer products
projected by three factor matrices) without building the tensor (docs/DESIGN.md, principle 3);
:func:`tucker_fusion_literal` is the literal algorithm, kept as the reference it is tested against.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from edge_emotion.config import ModelConfig


class TuckerFusion(nn.Module):
    """Learnable Tucker layer over the cross-modal tensor of algorithm A1.

    With ``X[n, t] = a[n, t] ⊗ v[n, t]`` (``N × T × D_a × D_v``), algorithm A2 returns
    ``G = X ×₂ U_Tᵀ ×₃ U_Aᵀ ×₄ U_Vᵀ`` (``N × R_T × R_A × R_V``). Because X is a sum of outer
    products, ``G[n] = Σ_t U_T[t] ⊗ (U_Aᵀ a[n,t]) ⊗ (U_Vᵀ v[n,t])``: each modality is projected into
    its low-rank space first, and the time contraction is one batched matmul there. Memory is
    ``O(N·T·(R_T·R_A + R_V))`` instead of ``O(N·T·D_a·D_v)``.
    """

    def __init__(self, time_steps: int, audio_dim: int, visual_dim: int, ranks: tuple[int, int, int]):
        super().__init__()
        r_t, r_a, r_v = ranks
        self.ranks = (r_t, r_a, r_v)
        self.U_T = nn.Parameter(torch.empty(time_steps, r_t))
        self.U_A = nn.Parameter(torch.empty(audio_dim, r_a))
        self.U_V = nn.Parameter(torch.empty(visual_dim, r_v))
        for factor in (self.U_T, self.U_A, self.U_V):
            nn.init.orthogonal_(factor)

    def forward(self, audio: Tensor, visual: Tensor) -> Tensor:
        """``audio`` ``(N, T, D_a)``, ``visual`` ``(N, T, D_v)`` -> core ``(N, R_T, R_A, R_V)``."""
        r_t, r_a, r_v = self.ranks
        audio_low = audio @ self.U_A  # (N, T, R_A)
        visual_low = visual @ self.U_V  # (N, T, R_V)
        # W[n, t, r, a] = U_T[t, r] * audio_low[n, t, a]
        weighted = self.U_T.unsqueeze(0).unsqueeze(-1) * audio_low.unsqueeze(2)  # (N, T, R_T, R_A)
        weighted = weighted.reshape(weighted.shape[0], weighted.shape[1], r_t * r_a)
        core = weighted.transpose(1, 2) @ visual_low  # (N, R_T * R_A, R_V)
        return core.reshape(core.shape[0], r_t, r_a, r_v)


def build_cross_modal_tensor(audio: Tensor, visual: Tensor) -> Tensor:
    """Algorithm A1, literally: for each sample and step, the outer product ``a_t ⊗ v_t``,
    stacked into ``X`` of shape ``(N, T, D_a, D_v)``."""
    samples = []
    for n in range(audio.shape[0]):
        steps = [torch.outer(audio[n, t], visual[n, t]) for t in range(audio.shape[1])]
        samples.append(torch.stack(steps))
    return torch.stack(samples)


def tucker_fusion_literal(audio: Tensor, visual: Tensor, U_T: Tensor, U_A: Tensor, U_V: Tensor) -> Tensor:
    """Algorithms A1 + A2 as written: build X, then the mode-2, mode-3 and mode-4 products with the
    transposed factor matrices. The reference for :class:`TuckerFusion`; memory grows with D_a·D_v."""
    x = build_cross_modal_tensor(audio, visual)  # (N, T, D_a, D_v)
    x = torch.einsum("ntav,tr->nrav", x, U_T)  # X ×₂ U_Tᵀ
    x = torch.einsum("nrav,as->nrsv", x, U_A)  # ×₃ U_Aᵀ
    return torch.einsum("nrsv,vq->nrsq", x, U_V)  # ×₄ U_Vᵀ


def tucker_fusion_materialized(audio: Tensor, visual: Tensor, U_T: Tensor, U_A: Tensor, U_V: Tensor) -> Tensor:
    """A1 + A2 with X built in one vectorised step (no Python loops): the fair baseline for timing
    the factored layer, since it differs from :func:`tucker_fusion_literal` only in speed."""
    x = audio.unsqueeze(-1) * visual.unsqueeze(-2)  # (N, T, D_a, D_v)
    x = torch.einsum("ntav,tr->nrav", x, U_T)
    x = torch.einsum("nrav,as->nrsv", x, U_A)
    return torch.einsum("nrsv,vq->nrsq", x, U_V)


class CrossModalAttention(nn.Module):
    """Multi-head attention where one modality's sequence queries the other's (keys and values).

    Written out (rather than ``nn.MultiheadAttention``) so that the key mask is a float input that
    exports to ONNX and quantizes as plain ops. Masked keys get zero weight; a query whose keys are
    all masked receives a zero context.
    """

    def __init__(self, d_model: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.head_dim = d_model // heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        n, t, _ = x.shape
        return x.reshape(n, t, self.heads, self.head_dim).transpose(1, 2)  # (N, H, T, d_h)

    def forward(self, query: Tensor, key: Tensor, key_mask: Tensor) -> Tensor:
        """``query`` ``(N, T_q, d)``, ``key`` ``(N, T_k, d)``, ``key_mask`` ``(N, T_k)`` 1/0 ->
        ``(N, T_q, d)``."""
        q, k, v = self._split(self.query(query)), self._split(self.key(key)), self._split(self.value(key))
        scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(self.head_dim))  # (N, H, T_q, T_k)
        keep = key_mask.unsqueeze(1).unsqueeze(1)  # (N, 1, 1, T_k)
        scores = scores - (1.0 - keep) * 1e4
        weights = torch.softmax(scores, dim=-1) * keep
        context = self.dropout(weights) @ v  # (N, H, T_q, d_h)
        n, _, t_q, _ = context.shape
        return self.out(context.transpose(1, 2).reshape(n, t_q, self.heads * self.head_dim))


class FusionHead(nn.Module):
    """Aligned sequences + masks -> logits.

    Inputs: ``audio`` ``(N, T, D_a)``, ``visual`` ``(N, T, D_v)``, ``audio_mask`` and
    ``visual_mask`` ``(N, T)`` (1 where that modality is present at that step).

    1. Both sequences are projected to ``d_model`` and given a learned position embedding.
    2. Bidirectional cross-modal attention (A.3): visual queries audio, audio queries visual, each
       with a residual connection and LayerNorm; missing steps are zeroed.
    3. A constant 1 is appended to each refined vector (as in the Tensor Fusion Network), so the
       per-step outer product ``[a;1] ⊗ [v;1]`` holds ``a``, ``v`` and ``a ⊗ v``: when one modality
       is absent, the other still reaches the core instead of being multiplied by zero. The
       constant is 0 on steps where both are missing, so those steps contribute nothing.
    4. Tucker fusion (A1 + A2) to the core ``(N, R_T, R_A, R_V)``; the R_T temporal components are
       the GRU's sequence, each a vector of ``R_A·R_V``.
    5. GRU, dropout, linear classifier.
    """

    def __init__(self, config: ModelConfig, audio_dim: int, visual_dim: int, n_classes: int):
        super().__init__()
        d, t = config.d_model, config.time_steps
        r_t, r_a, r_v = config.ranks
        self.audio_proj = nn.Linear(audio_dim, d)
        self.visual_proj = nn.Linear(visual_dim, d)
        self.position = nn.Parameter(torch.zeros(1, t, d))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.visual_to_audio = CrossModalAttention(d, config.heads)  # visual queries audio
        self.audio_to_visual = CrossModalAttention(d, config.heads)  # audio queries visual
        self.audio_norm = nn.LayerNorm(d)
        self.visual_norm = nn.LayerNorm(d)
        self.residual_dropout = nn.Dropout(0.1)
        self.tucker = TuckerFusion(t, d + 1, d + 1, (r_t, r_a, r_v))
        self.core_norm = nn.LayerNorm(r_a * r_v)
        self.gru = nn.GRU(r_a * r_v, config.gru_hidden, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.gru_hidden, n_classes)

    def forward(self, audio: Tensor, visual: Tensor, audio_mask: Tensor, visual_mask: Tensor) -> Tensor:
        a = self.audio_proj(audio) + self.position
        v = self.visual_proj(visual) + self.position
        audio_context = self.audio_to_visual(a, v, visual_mask)
        visual_context = self.visual_to_audio(v, a, audio_mask)
        a = self.audio_norm(a + self.residual_dropout(audio_context)) * audio_mask.unsqueeze(-1)
        v = self.visual_norm(v + self.residual_dropout(visual_context)) * visual_mask.unsqueeze(-1)
        present = torch.maximum(audio_mask, visual_mask).unsqueeze(-1)
        core = self.tucker(torch.cat([a, present], dim=-1), torch.cat([v, present], dim=-1))
        sequence = self.core_norm(core.flatten(2))  # (N, R_T, R_A * R_V)
        _, hidden = self.gru(sequence)
        return self.classifier(self.dropout(hidden[-1]))

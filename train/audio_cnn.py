"""The audio encoder of appendix A.1: a 2-D CNN over one log-mel window.

``(N, 1, n_mels, n_frames) float32`` -> ``(N, T_a, audio_dim) float32``: blocks of two 3x3
convolutions (BatchNorm, ReLU) followed by a 3x3 stride-2 max-pool. Every pool halves frequency;
only the blocks flagged in ``time_pool`` halve time, so the output keeps a time axis of ``T_a``
steps. Frequency is then averaged away, leaving one ``audio_dim`` vector per step.
"""

from __future__ import annotations

from torch import Tensor, nn


def _block(in_channels: int, out_channels: int, pool_time: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=(2, 2 if pool_time else 1), padding=1),
    )


class AudioCNN(nn.Module):
    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 128), time_pool: tuple[bool, ...] = (True,) * 4):
        super().__init__()
        if len(channels) != len(time_pool):
            raise ValueError("channels and time_pool need one entry per block")
        blocks, previous = [], 1
        for out_channels, pool_time in zip(channels, time_pool, strict=True):
            blocks.append(_block(previous, out_channels, pool_time))
            previous = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = previous
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, log_mel: Tensor) -> Tensor:
        """``log_mel``: ``(N, 1, n_mels, n_frames)`` normalised -> ``(N, T_a, out_dim)``."""
        x = self.blocks(log_mel)  # (N, C, F', T_a)
        return x.mean(dim=2).transpose(1, 2)

"""Sampling masks at random continuous points.

Points are normalised coordinates in [0, 1]^2 and are read with bilinear `grid_sample` and
align_corners=False, so a stride-2 prediction (H/2, W/2) and a full-resolution target (H, W) are sampled at
the same physical locations.

Outside the outermost pixel centres the value is clamped to the edge pixel (`padding_mode="border"`). The
official code pads with zeros, which pulls every map towards 0 within half a pixel of the border; that band is
twice as wide for a stride-2 prediction as for its full-resolution target, so the two would disagree there and
even a perfect prediction would keep a border loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_points(
    num_rows: int,
    num_points: int,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(num_rows, num_points, 2) uniform points in [0, 1]^2 as (x, y)."""
    return torch.rand(num_rows, num_points, 2, device=device, generator=generator)


def sample_points(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample per-row maps at per-row points.

    maps: (R, K, H, W) float, K maps that share row r's points.
    points: (R, P, 2) in [0, 1]^2.
    returns: (R, K, P).
    """
    grid = (2.0 * points - 1.0).unsqueeze(1).to(maps.dtype)  # (R, 1, P, 2)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False).squeeze(2)


def sample_binary_masks(masks: torch.Tensor, points: torch.Tensor, chunk_size: int = 16) -> torch.Tensor:
    """Like `sample_points` for bool masks (R, K, H, W), converted to float a few maps at a time.

    Full-resolution float copies of every target would cost K * 4 bytes per pixel; chunking over K bounds
    that. Returns (R, K, P) float32 in [0, 1] (fractional at object borders).
    """
    parts = [
        sample_points(masks[:, start : start + chunk_size].float(), points)
        for start in range(0, masks.shape[1], chunk_size)
    ]
    if not parts:
        return masks.new_zeros((masks.shape[0], 0, points.shape[1]), dtype=torch.float32)
    return torch.cat(parts, dim=1)

"""Settings of one demo server (filled from the command line by `flows.cli.demo`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from flows.demo.limits import UploadLimits

# The official demo's choices for --image_size (spec section 9).
IMAGE_SIZES = (512, 384, 224, 336, 448, 768)


@dataclass
class DemoConfig:
    """Everything `build_demo` and `launch_demo` need.

    weights: official `.pth` checkpoint or our converted checkpoint folder.
    dino_config: transformers Dinov2Config JSON for checkpoints whose DINOv2 sizes are not standard.
    server_name / server_port: where gradio listens (port None: first free from 7860).
    viser_port: first port tried for the per-session 3-D viewers (each session takes the next free one;
        0 lets the OS pick any free port).
    viewer_host: host the browser uses to reach the viewers; None means the host of the page itself.
    image_size: long side (pixels) the images are resized to before the model.
    device: torch device; amp: "none", "bf16" or "fp16".
    tmp_dir: parent folder of the per-session folders (None: the system temp folder).
    silent: less logging. camera_animation: add the orbiting-camera controls to the viewer.
    allow_local_files: a folder whose images may be loaded by path ("Local path" tab); None disables it.
    limits: upload limits. max_sessions / session_idle_s: concurrent session cap and idle timeout.
    """

    weights: Path
    dino_config: Path | None = None
    server_name: str = "127.0.0.1"
    server_port: int | None = None
    viser_port: int = 5000
    viewer_host: str | None = None
    image_size: int = 512
    device: str = "cuda"
    amp: str = "none"
    tmp_dir: Path | None = None
    silent: bool = False
    camera_animation: bool = False
    allow_local_files: Path | None = None
    limits: UploadLimits = field(default_factory=UploadLimits)
    max_sessions: int = 8
    session_idle_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(
                f"--image_size {self.image_size} is not supported; choose one of {', '.join(map(str, IMAGE_SIZES))}"
            )
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"--amp {self.amp!r} is not supported; choose none, bf16 or fp16")
        if not 0 <= self.viser_port <= 65535:
            raise ValueError(
                f"--viser_port {self.viser_port} is not a port number (0-65535; 0 = any free port)"
            )

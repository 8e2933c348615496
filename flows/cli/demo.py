"""`panst3r demo`: the Gradio demo with a 3-D viewer per browser session.

The official flags keep their names (`--server_name`, `--viser_port`, ...) so that commands from the
official README work unchanged; `gradio_panst3r.py` at the repository root is an alias.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from flows.demo.config import IMAGE_SIZES, DemoConfig
from flows.demo.limits import UploadLimits

HELP = "the Gradio demo with the 3-D viewer"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="checkpoint: official .pth or our converted folder")
    parser.add_argument(
        "--dino-config", dest="dino_config", default=None, help="Dinov2Config JSON (tiny models)"
    )
    host = parser.add_mutually_exclusive_group()
    host.add_argument("--server_name", default=None, help="address gradio listens on (default 127.0.0.1)")
    host.add_argument(
        "--local_network", action="store_true", help="listen on 0.0.0.0 (reachable from the local network)"
    )
    parser.add_argument(
        "--server_port", type=int, default=None, help="gradio port (default: first free from 7860)"
    )
    parser.add_argument(
        "--viser_port",
        type=int,
        default=5000,
        help="first port for the per-session 3-D viewers (default 5000)",
    )
    parser.add_argument(
        "--viewer_host",
        default=None,
        help="host name browsers use to reach the viewers (default: the page's host)",
    )
    parser.add_argument(
        "--image_size", type=int, default=512, choices=IMAGE_SIZES, help="model input long side"
    )
    parser.add_argument("--device", default="cuda", help="torch device (cuda, cuda:1, cpu)")
    parser.add_argument(
        "--amp", default="none", help="mixed precision: none/False, bf16 or fp16 (as the official --amp)"
    )
    parser.add_argument("--tmp_dir", default=None, help="parent folder of the per-session folders")
    parser.add_argument("-q", "--silent", "--quiet", dest="silent", action="store_true", help="less output")
    parser.add_argument(
        "--allow_local_files",
        metavar="ROOT",
        default=None,
        help="add a 'Local path' tab that loads images from inside ROOT only",
    )
    parser.add_argument("--camera_animation", action="store_true", help="add an orbiting-camera control")
    parser.add_argument(
        "--text-embeddings",
        dest="text_embeddings",
        default="auto",
        choices=("auto", "siglip", "hashed"),
        help="class-name embedder: SigLIP (local copy) or the offline hashed one; auto picks",
    )
    parser.add_argument("--max-images", dest="max_images", type=int, default=200, help="images per run")
    parser.add_argument("--max-image-mb", dest="max_image_mb", type=float, default=50.0, help="MiB per image")
    parser.add_argument("--max-total-mb", dest="max_total_mb", type=float, default=1000.0, help="MiB per run")
    parser.add_argument(
        "--max-sessions", dest="max_sessions", type=int, default=8, help="open sessions at once"
    )
    parser.add_argument(
        "--session-idle-s",
        dest="session_idle_s",
        type=float,
        default=3600.0,
        help="close idle sessions after",
    )


def _amp(value: str) -> str:
    # The official flag takes False/bf16/fp16.
    lowered = value.strip().lower()
    return "none" if lowered in ("false", "none", "no", "0", "fp32") else lowered


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    weights = Path(args.weights)
    if not weights.exists():
        raise FileNotFoundError(f"--weights {weights}: no such file or folder; pass a PanSt3R checkpoint")
    dino_config = Path(args.dino_config) if args.dino_config else None
    if dino_config is not None and not dino_config.is_file():
        raise FileNotFoundError(f"--dino-config {dino_config}: no such file; pass a Dinov2Config JSON")
    server_name = "0.0.0.0" if args.local_network else (args.server_name or "127.0.0.1")
    return DemoConfig(
        weights=weights,
        dino_config=dino_config,
        server_name=server_name,
        server_port=args.server_port,
        viser_port=args.viser_port,
        viewer_host=args.viewer_host,
        image_size=args.image_size,
        device=args.device,
        amp=_amp(args.amp),
        tmp_dir=Path(args.tmp_dir) if args.tmp_dir else None,
        silent=args.silent,
        camera_animation=args.camera_animation,
        allow_local_files=Path(args.allow_local_files) if args.allow_local_files else None,
        limits=UploadLimits(
            max_images=args.max_images, max_image_mb=args.max_image_mb, max_total_mb=args.max_total_mb
        ),
        max_sessions=args.max_sessions,
        session_idle_s=args.session_idle_s,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.silent:
        logging.getLogger().setLevel(logging.WARNING)
    if config.tmp_dir is not None:
        # gradio stores uploads under GRADIO_TEMP_DIR; keep them under --tmp_dir too (read at import).
        os.environ.setdefault("GRADIO_TEMP_DIR", str(config.tmp_dir / "gradio"))
    # Imported here so that `panst3r demo --help` and argument errors stay fast.
    from flows.demo.app import launch_demo
    from flows.demo.model import DemoModel

    model = DemoModel.load(
        config.weights, config.device, config.amp, config.dino_config, config.image_size, args.text_embeddings
    )
    launch_demo(config, model, block=True)
    return 0

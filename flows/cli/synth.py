"""`panst3r synth`: write synthetic scenes in the ScanNet++ v2 layout, plus a pairs folder."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write synthetic scenes in the ScanNet++ v2 layout, plus a pairs folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, type=Path, help="dataset root to write (ROOT/data/<scene>/...)"
    )
    parser.add_argument("--scenes", required=True, type=int, help="number of scenes")
    parser.add_argument("--seed", required=True, type=int, help="random seed; same seed -> identical files")
    parser.add_argument(
        "--preset",
        choices=("default", "scannetpp"),
        default="default",
        help="default: 24 frames of 876x584, the base room. scannetpp: ScanNet++ v2 DSLR-sized scenes, "
        "150 fisheye frames of 1752x1168, >= 250k mesh faces, >= 200 annotated objects. "
        "The flags below override single values",
    )
    parser.add_argument("--frames", type=int, default=None, help="DSLR frames per scene (default 24)")
    parser.add_argument(
        "--image-size",
        nargs=2,
        type=int,
        default=None,
        metavar=("W", "H"),
        help="DSLR image size (default 876 584, half of the real 1752 1168)",
    )
    parser.add_argument(
        "--mesh-faces",
        type=int,
        default=None,
        metavar="N",
        help="subdivide the mesh to at least N faces without changing the room (default 0 = as built)",
    )
    parser.add_argument(
        "--objects",
        type=int,
        default=None,
        metavar="N",
        help="add clutter up to at least N annotated objects where space allows (default 0 = the base room)",
    )
    parser.add_argument(
        "--camera-model",
        choices=("OPENCV_FISHEYE", "OPENCV"),
        default="OPENCV_FISHEYE",
        help="DSLR lens model in colmap/cameras.txt (default OPENCV_FISHEYE, the real ScanNet++ DSLR)",
    )
    parser.add_argument(
        "--dslr-focal-range",
        nargs=2,
        type=float,
        default=None,
        metavar=("LOW", "HIGH"),
        help="DSLR focal length per scene, width x uniform(LOW, HIGH) (default 0.58 0.64, like the real "
        "DSLR; e.g. 0.5 0.9 for 3-D pretraining, where the focal must be read from the images; LOW >= 0.5)",
    )
    parser.add_argument("--iphone", action="store_true", help="also write iPhone frames and select them")
    parser.add_argument("--pairs", type=Path, default=None, help="pairs folder to write (default ROOT/pairs)")
    parser.add_argument(
        "--anon-every",
        type=int,
        default=0,
        metavar="N",
        help="blank a small anonymised region in every N-th frame's mask (default 0 = never)",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from datasets.synthetic.generate import PRESETS, SynthConfig, generate_dataset

    settings = dict(PRESETS[args.preset])
    for key in ("frames", "image_size", "mesh_faces", "objects"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    settings["image_size"] = tuple(settings["image_size"])
    if args.dslr_focal_range is not None:
        settings["dslr_focal_range"] = tuple(args.dslr_focal_range)
    # Check the arguments before any progress output.
    SynthConfig(
        args.scenes, args.seed, iphone=args.iphone, camera_model=args.camera_model, **settings
    ).validate()
    if args.anon_every < 0:
        raise ValueError(f"--anon-every must be >= 0, got {args.anon_every}")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL logs its platform probing at INFO
    pairs_dir = args.pairs if args.pairs is not None else args.out / "pairs"
    with Progress(
        TextColumn("[bold]synth[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ) as progress:
        task = progress.add_task("scenes", total=args.scenes)

        def on_scene(scene_id: str, done: int, total: int) -> None:
            progress.update(task, completed=done, description=f"scene {scene_id}")

        ids = generate_dataset(
            args.out,
            args.scenes,
            args.seed,
            iphone=args.iphone,
            pairs_dir=pairs_dir,
            anon_every=args.anon_every,
            on_scene=on_scene,
            camera_model=args.camera_model,
            **settings,
        )
    print(f"wrote {len(ids)} scene(s) to {args.out / 'data'} ({', '.join(ids)})")
    print(f"pairs: {pairs_dir}; splits: {args.out / 'splits'}; class lists: {args.out / 'metadata'}")
    return 0

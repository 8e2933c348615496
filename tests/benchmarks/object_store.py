"""Which commit protocol for a store on an object store: the same scenes written by the project's writer
(`datasets.store.writer.write_scene`: same arrays, chunks, shards and codecs) with the same number of writer
processes, committed three ways, then read back frame by frame:

- `local`: a directory store, staging + one rename (today's store, the baseline);
- `icechunk`: the IcechunkBackend on S3 (one transaction per scene, rebased over concurrent commits);
- `obstore-manifest`: zarr's ObjectStore (obstore) on S3, each scene written under a fresh prefix
  `scenes/<id>.<uuid>/` and committed by one PUT of `manifests/<id>.json` naming it (the alternative).

The S3 server is a real SeaweedFS on loopback (tests/s3_server.py), so the numbers are this machine's CPU
and loopback, not a network's latency. Prints a table and writes JSON (default docs/benchmarks/).

    .venv/bin/python tests/benchmarks/object_store.py --scenes 8 --frames 8 --writers 1 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
HASHES = {"source_hash": "bench", "config_hash": "bench", "code_version": "bench"}
BACKENDS = ("local", "icechunk", "obstore-manifest")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=8, help="scenes per run (default 8)")
    parser.add_argument("--frames", type=int, default=8, help="DSLR frames per scene (default 8)")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(1035, 690), metavar=("W", "H"), help="frame size"
    )
    parser.add_argument(
        "--writers", type=int, nargs="+", default=[1, 2], help="writer processes (default 1 2)"
    )
    parser.add_argument("--reads", type=int, default=40, help="random frames read back per backend")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per backend and writer count, interleaved; the median is kept",
    )
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks" / "object_store_cpu.json"))
    return parser.parse_args()


def bench_scene(scene_id: str, frames: int, width: int, height: int, seed: int):
    """A PreprocessedScene whose images compress about as camera images do (smooth shading + noise)."""
    from datasets.preprocess.result import FrameBlock, PreprocessedScene

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, width, dtype=np.float32)[None, :, None]
    images = (ramp + rng.integers(0, 40, (frames, height, width, 3))).astype(np.uint8)
    depth = np.linspace(500, 6000, height, dtype=np.float32)[:, None] + rng.normal(
        0, 5, (frames, height, width)
    )
    panoptic = (
        (np.arange(width)[None, None, :] // 64 * 256 + 1)
        .astype(np.uint32)
        .repeat(height, 1)
        .repeat(frames, 0)
    )
    block = FrameBlock(
        camera="dslr",
        names=[f"DSC{i:05d}" for i in range(frames)],
        images=images,
        depth_mm=depth.astype(np.uint16),
        panoptic=panoptic,
        intrinsics=np.repeat(np.eye(3)[None], frames, 0),
        cam_to_world=np.repeat(np.eye(4)[None], frames, 0),
    )
    pairs = np.array([[i, i + 1, 0.5] for i in range(frames - 1)], dtype=np.float64)
    return PreprocessedScene(scene_id, {"dslr": block}, [("dslr", i) for i in range(frames)], pairs, [], [])


def manifest_backend(url: str):
    """The alternative protocol as a StoreBackend whose commit `write_scene` can drive; what this benchmark
    does not exercise (tables, versions, ...) it refuses."""
    import obstore
    import zarr
    from zarr.storage import ObjectStore

    from datasets.store.backend import StoreBackend
    from datasets.store.location import StoreLocation
    from datasets.store.s3_settings import S3Settings

    class ManifestBackend(StoreBackend):
        def __init__(self):
            self.location = StoreLocation.parse(url)
            self.objects = S3Settings.from_env().obstore_store(self.location)

        def commit_scene(self, scene_id: str, fill) -> None:
            version = uuid.uuid4().hex
            fill(
                zarr.open_group(
                    store=ObjectStore(self.objects), path=f"scenes/{scene_id}.{version}", mode="w"
                )
            )
            obstore.put(self.objects, f"manifests/{scene_id}.json", json.dumps({"version": version}).encode())

        def open_scene(self, scene_id: str) -> zarr.Group:
            manifest = bytes(obstore.get(self.objects, f"manifests/{scene_id}.json").bytes())
            path = f"scenes/{scene_id}.{json.loads(manifest)['version']}"
            return zarr.open_group(store=ObjectStore(self.objects, read_only=True), path=path, mode="r")

        def chunk_location(self, relative: str) -> str:
            return f"{self.location}/{relative}"

        def _not_measured(self, *args, **kwargs):
            raise NotImplementedError("the manifest prototype implements only what the benchmark measures")

        exists = create = root_group = update_root_attrs = committed_scene_ids = _not_measured
        scene_attrs = scene_token = sweep = lock = read_file = write_file = delete_file = _not_measured
        list_files = describe = snapshot = _not_measured

    return ManifestBackend()


def _write_one(job: tuple[str, str, str, int, int, int, int]) -> dict:
    """Runs in a spawned writer process: build the scene, write and commit it, time both."""
    from datasets.store.backend import StoreBackend
    from datasets.store.writer import write_scene

    backend, target, scene_id, frames, width, height, seed = job
    store: str | StoreBackend = manifest_backend(target) if backend == "obstore-manifest" else target
    scene = bench_scene(scene_id, frames, width, height, seed)
    started = time.perf_counter()
    summary = write_scene(store, scene, **HASHES, started_at=started)
    return {"total": time.perf_counter() - started, "commit": summary["commit_seconds"]}


def measure_writes(backend: str, target: str, args: argparse.Namespace, writers: int) -> dict:
    from datasets.store.writer import open_or_create_store

    if backend != "obstore-manifest":
        open_or_create_store(target)
    width, height = args.size
    jobs = [(backend, target, f"scene{i:03d}", args.frames, width, height, i) for i in range(args.scenes)]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        results = pool.map(_write_one, jobs, chunksize=1)
    wall = time.perf_counter() - started
    commits = sorted(r["commit"] for r in results)
    return {
        "writers": writers,
        "wall_s": round(wall, 3),
        "frames_per_s": round(args.scenes * args.frames / wall, 2),
        "scene_write_s_mean": round(statistics.mean(r["total"] - r["commit"] for r in results), 4),
        "commit_s_median": round(statistics.median(commits), 4),
        "commit_s_max": round(commits[-1], 4),
    }


def measure_reads(backend: str, target: str, args: argparse.Namespace) -> dict:
    """Cold open of every scene, then random frames of images + depth + panoptic (3 chunk reads each)."""
    rng = np.random.default_rng(0)
    scene_ids = [f"scene{i:03d}" for i in range(args.scenes)]
    started = time.perf_counter()
    if backend == "obstore-manifest":
        manifest = manifest_backend(target)
        groups = {s: manifest.open_scene(s)["dslr"] for s in scene_ids}

        def read(scene_id, index):
            for name in ("images", "depth_mm", "panoptic"):
                groups[scene_id][name][index]
    else:
        from datasets.store.reader import StoreReader

        reader = StoreReader(target)
        for scene_id in scene_ids:
            reader.camera_frame_names(scene_id)

        def read(scene_id, index):
            reader.read_pixels(scene_id, index)

    opened = time.perf_counter()
    for _ in range(args.reads):
        read(scene_ids[rng.integers(len(scene_ids))], int(rng.integers(args.frames)))
    return {
        "open_s_per_scene": round((opened - started) / len(scene_ids), 4),
        "read_ms_per_frame": round((time.perf_counter() - opened) / args.reads * 1000, 2),
    }


def run(args: argparse.Namespace, work: Path, s3) -> list[dict]:
    """Every (backend, writers) `--repeat` times, the backends interleaved so that load changes on this
    shared machine hit them alike; per configuration the median of each number."""
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(args.repeat):
        for writers in args.writers:
            for backend in args.backends:
                name = f"{backend}-{writers}-{uuid.uuid4().hex[:6]}"
                target = str(work / name) if backend == "local" else s3.url(f"bench/{name}")
                row = {
                    **measure_writes(backend, target, args, writers),
                    **measure_reads(backend, target, args),
                }
                print(json.dumps({"backend": backend, **row}), flush=True)
                runs.setdefault((backend, writers), []).append(row)
    return [
        {"backend": backend, "writers": writers, "runs": len(rows)}
        | {key: statistics.median(row[key] for row in rows) for key in rows[0] if key != "writers"}
        for (backend, writers), rows in sorted(runs.items(), key=lambda item: (item[0][1], item[0][0]))
    ]


def main() -> int:
    args = parse_args()
    from s3_server import SeaweedS3

    with tempfile.TemporaryDirectory(prefix="panst3r_objbench_") as tmp:
        work = Path(tmp)
        with SeaweedS3(work / "seaweedfs") as s3:
            os.environ.update(s3.env())
            rows = run(args, work, s3)
    width, height = args.size
    result = {
        "benchmark": "tests/benchmarks/object_store.py",
        "machine": f"{platform.node()} {os.cpu_count()} CPUs {platform.machine()}",
        "load_average_after": os.getloadavg()[0],
        "scenes": args.scenes,
        "frames_per_scene": args.frames,
        "frame_size": [width, height],
        "repeat": args.repeat,
        "server": "SeaweedFS (weed mini) on 127.0.0.1",
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("\n| backend | writers | frames/s | commit s (median / max) | write s per scene | read ms/frame |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['writers']} | {r['frames_per_s']} | {r['commit_s_median']} / {r['commit_s_max']} "
            f"| {r['scene_write_s_mean']} | {r['read_ms_per_frame']} |"
        )
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Preprocessing throughput: frames per second of the `preprocess` flow with 1, 2, ... Dask workers on the
same synthetic scenes (each run into a fresh store, one Prefect server shared by all runs), into a local
directory and/or an object store (`--stores local s3`: a SeaweedFS S3 server on loopback started here), with
each scene's commit latency (the rename, or the Icechunk transaction).

    .venv/bin/python tests/benchmarks/preprocess.py --scenes 4 --frames 8 --workers 1 2
    .venv/bin/python tests/benchmarks/preprocess.py --scenes 4 --frames 8 --workers 1 2 --stores local s3
    .venv/bin/python tests/benchmarks/preprocess.py --preset scannetpp --scenes 32 --workers 1 2 4 8 16 \
        --gen-workers 16 --json docs/benchmarks/preprocess_realistic_h200.json

`--preset scannetpp` generates ScanNet++ v2 DSLR-sized scenes (`panst3r synth --preset scannetpp`: 150
fisheye frames of 1752x1168, >= 250k faces, >= 200 objects); --frames, --image-size, --mesh-faces and
--objects override single values. Each worker count runs on its own Dask LocalCluster, made with the
settings the flow would use and passed to it by address, so that the scheduler's task stream gives every
worker's busy time. Per row: frames/s, scaling efficiency (frames/s at w workers / (w x frames/s at the
fewest workers measured, normally 1)), task seconds per frame by stage, per-worker busy seconds, each
worker's peak resident memory (ru_maxrss of the worker process over the row's run) and the meshes built
(one per scene and worker that renders it). `--frames-per-task 0 32` compares one task per scene with
32-frame chunk tasks on the same scenes (rows of each size get their own efficiency base).
`--scenes-per-worker K` measures weak scaling (K*w scenes at w workers: rows of equal length, so that a
1-worker row of ScanNet++-sized scenes fits a time limit); `--keep-root DIR` keeps the generated scenes for
later runs with `--root DIR/root --pairs DIR/pairs`.

`--runner flow processes` adds, per worker count, a row of the same scenes with no orchestration at all: no
Dask, no Prefect. This process plans and stages them with the library as the flow process does, then w plain
processes (spawned with the environment of the flow's workers, each running their preload before the clock
starts) wait on a barrier and each runs a static share, scene i in process i % w: its frame chunks in order,
then its commit. The row is timed from the barrier's release to the last process's end (its flow_seconds;
planning, staging and process start are in wall_seconds and cluster_start_seconds). Its task seconds per
frame are the frames' own slowdown beside w-1 other workers (shared memory bandwidth, all-core clock, one
shared GPU), and its frames/s the ceiling any scheduler can reach on that host (for scenes of equal size, as
`--scenes-per-worker` runs them): the gap between a flow row and the processes row of the same w is the
orchestration's. Each runner is its own efficiency base.

    .venv/bin/python tests/benchmarks/preprocess.py --scenes 4 --frames 32 --workers 1 2 \
        --scenes-per-worker 2 --runner flow processes --frames-per-task 16

Prints a table and writes it (JSON + Markdown) under --out (default runs/benchmarks/); --json also writes
the JSON to that file (settings without local paths, fit to commit under docs/benchmarks/).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets.preprocess.result import PreprocessConfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    # The sibling import below; appended, so that this folder's scripts shadow no installed module. (Run as a
    # script, this file is its spawned processes' main module.)
    sys.path.append(str(HERE))

from host_info import cpu_description, environment  # noqa: E402  (tests/benchmarks/host_info.py)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=4, help="synthetic scenes (default 4)")
    parser.add_argument(
        "--preset", choices=("default", "scannetpp"), default=None, help="generator preset (see above)"
    )
    parser.add_argument(
        "--frames", type=int, default=None, help="DSLR frames per scene (default 8, or the preset's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--image-size", type=int, nargs=2, default=None, metavar=("W", "H"), help="generator size"
    )
    parser.add_argument("--mesh-faces", type=int, default=None, help="generator: at least this many faces")
    parser.add_argument("--objects", type=int, default=None, help="generator: at least this many objects")
    parser.add_argument(
        "--camera-model", choices=("OPENCV_FISHEYE", "OPENCV"), default="OPENCV_FISHEYE", help="DSLR lens"
    )
    parser.add_argument(
        "--gen-workers", type=int, default=1, help="processes generating the scenes in parallel (default 1)"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare (default 1 2)"
    )
    parser.add_argument(
        "--target-resolution", type=int, default=920, help="preprocess resolution (default 920)"
    )
    parser.add_argument(
        "--frames-per-task",
        type=int,
        nargs="+",
        default=None,
        help="frame-chunk sizes to compare (0 = one task per scene; default: the flow's default)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per configuration, interleaved; medians reported (default 1)",
    )
    parser.add_argument(
        "--stores", nargs="+", default=["local"], choices=("local", "s3"), help="store kinds (default local)"
    )
    parser.add_argument("--root", default=None, help="use this ScanNet++ root instead of generating one")
    parser.add_argument("--pairs", default=None, help="pairs folder of --root")
    parser.add_argument("--out", default=str(REPO / "runs" / "benchmarks"), help="results folder")
    parser.add_argument("--label", default="", help="free text stored with the results (e.g. the machine)")
    parser.add_argument("--json", default=None, help="also write the JSON result to this file")
    parser.add_argument(
        "--keep-root",
        default=None,
        help="generate into this folder (root/ and pairs/) and keep it, for later runs with --root",
    )
    parser.add_argument(
        "--scenes-per-worker",
        type=int,
        default=0,
        help="weak scaling: the row of w workers processes the first K*w scenes (default 0: every scene "
        "in every row)",
    )
    parser.add_argument(
        "--frame-devices",
        nargs="+",
        default=["auto"],
        choices=("auto", "cpu", "cuda"),
        help="PANST3R_FRAME_DEVICE of the workers (where they undistort and rescale RGB), one set of rows "
        "each (default auto)",
    )
    parser.add_argument(
        "--runner",
        nargs="+",
        default=["flow"],
        choices=("flow", "processes"),
        help="flow: the preprocess flow on a Dask cluster; processes: the same scenes in plain processes with "
        "no Dask or Prefect (see above); one set of rows each (default flow)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="an earlier result JSON of this script whose rows join the efficiency base (its fewest workers "
        "per store kind), for worker counts measured in separate runs",
    )
    args = parser.parse_args(argv)
    if args.frames_per_task is None:
        from datasets.preprocess.result import DEFAULT_FRAMES_PER_TASK

        args.frames_per_task = [DEFAULT_FRAMES_PER_TASK]
    if args.baseline and not Path(args.baseline).is_file():
        parser.error(f"--baseline {args.baseline}: no such file (give a JSON this script wrote)")
    if min(args.workers) < 1 or args.gen_workers < 1 or args.scenes < 1 or args.scenes_per_worker < 0:
        parser.error("--workers, --gen-workers and --scenes must be at least 1, --scenes-per-worker >= 0")
    if args.keep_root and args.root:
        parser.error("--keep-root generates scenes, --root uses existing ones: give one of them")
    if args.keep_root and Path(args.keep_root).exists() and any(Path(args.keep_root).iterdir()):
        parser.error(
            f"--keep-root {args.keep_root} is not empty; reuse it with --root {args.keep_root}/root "
            f"--pairs {args.keep_root}/pairs, or give a new folder"
        )
    if args.scenes_per_worker and not args.root and args.scenes < args.scenes_per_worker * max(args.workers):
        parser.error(
            f"--scenes-per-worker {args.scenes_per_worker} with {max(args.workers)} workers needs "
            f"--scenes >= {args.scenes_per_worker * max(args.workers)}, got {args.scenes}"
        )
    return args


def generator_settings(args: argparse.Namespace) -> dict:
    """SynthConfig fields from the preset (none: 8 frames of the generator's default size) and the flags."""
    from datasets.synthetic.generate import PRESETS

    settings = dict(PRESETS[args.preset]) if args.preset else {"frames": 8}
    for key in ("frames", "image_size", "mesh_faces", "objects"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if "image_size" in settings:
        settings["image_size"] = tuple(settings["image_size"])
    settings["camera_model"] = args.camera_model
    return settings


def machine_description() -> str:
    gpu = ""
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
        gpu = subprocess.run(query, capture_output=True, text=True).stdout.strip().replace("\n", ", ")
    cpus = f"{os.cpu_count()} CPUs ({cpu_description()})"
    return f"{platform.node()} {cpus} {platform.machine()}" + (f", GPU {gpu}" if gpu else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from flows.prefect_env import configure_prefect_env, quiet_chatty_loggers

    work = Path(tempfile.mkdtemp(prefix="panst3r_bench_"))
    configure_prefect_env(work / "prefect")
    quiet_chatty_loggers()
    try:
        root, pairs, generation = benchmark_inputs(args, work)
        with object_store(args, work) as s3:
            rows = measure_workers(args, root, pairs, work, s3)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(args, rows, generation)
    return 0


def benchmark_inputs(args: argparse.Namespace, work: Path) -> tuple[Path, Path | None, dict]:
    """(ScanNet++ root, pairs folder, generation stats): --root, or synthetic scenes generated into `work`
    by `--gen-workers` processes (one scene each, as `panst3r synth` writes them)."""
    if args.root:
        return Path(args.root), Path(args.pairs) if args.pairs else None, {}
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from datasets.synthetic.generate import SynthConfig, scene_ids, split_scenes
    from datasets.synthetic.writer import write_metadata, write_splits

    base = Path(args.keep_root) if args.keep_root else work
    root, pairs = base / "root", base / "pairs"
    config = SynthConfig(num_scenes=args.scenes, seed=args.seed, **generator_settings(args))
    config.validate()
    (root / "data").mkdir(parents=True)
    write_metadata(root)
    ids = scene_ids(args.seed, args.scenes)
    write_splits(root, *split_scenes(ids))
    started = time.perf_counter()
    jobs = [(config, index, scene_id, root, pairs) for index, scene_id in enumerate(ids)]
    with ProcessPoolExecutor(min(args.gen_workers, len(ids)), mp_context=get_context("spawn")) as pool:
        scene_seconds = list(pool.map(_generate_one, jobs))
    seconds = time.perf_counter() - started
    generation = {
        "seconds": round(seconds, 2),
        "processes": min(args.gen_workers, len(ids)),
        "seconds_per_scene": [round(t, 2) for t in scene_seconds],
        **scene_stats(root, ids),
    }
    print(f"generated {args.scenes} scenes in {seconds:.1f} s ({generation})")
    return root, pairs, generation


def _generate_one(job) -> float:
    """One scene in a worker process; its seconds."""
    from datasets.synthetic.generate import generate_scene

    started = time.perf_counter()
    generate_scene(*job)
    return time.perf_counter() - started


def scene_stats(root: Path, ids: list[str]) -> dict:
    """Size of the generated scenes as written: DSLR frames and size, mesh faces, annotated objects."""
    from datasets.scannetpp.reader import read_scene

    faces, objects, frames = [], [], []
    for scene_id in ids:
        scans = root / "data" / scene_id / "scans"
        with open(scans / "mesh_aligned_0.05.ply", "rb") as ply:
            header = ply.read(4096).split(b"end_header")[0].decode("ascii")
        faces.append(int(header.split("element face ")[1].split()[0]))
        objects.append(len(json.loads((scans / "segments_anno.json").read_text())["segGroups"]))
        frames.append(len(read_scene(root, scene_id).frames))
    camera = read_scene(root, ids[0]).frames[0].camera
    return {
        "frames_per_scene": frames,
        "faces_per_scene": faces,
        "objects_per_scene": objects,
        "camera": f"{camera.model} {camera.width}x{camera.height}",
    }


@contextmanager
def object_store(args: argparse.Namespace, work: Path):
    """A SeaweedFS S3 server for the run when `--stores` asks for s3 (its variables set for the workers)."""
    if "s3" not in args.stores:
        yield None
        return
    sys.path.insert(0, str(REPO / "tests"))
    from s3_server import SeaweedS3

    with SeaweedS3(work / "seaweedfs") as s3:
        os.environ.update(s3.env())
        yield s3


def measure_workers(args: argparse.Namespace, root: Path, pairs: Path | None, work: Path, s3) -> list[dict]:
    """Each runner into a fresh store per worker count and store kind; the flow's runs against one Prefect
    server."""
    from datasets.preprocess.frame_device import FRAME_DEVICE_ENV
    from datasets.scannetpp.reader import list_scenes

    all_scenes = list_scenes(root, pairs)
    if len(all_scenes) < args.scenes_per_worker * max(args.workers):
        raise SystemExit(
            f"--scenes-per-worker {args.scenes_per_worker} x {max(args.workers)} workers needs "
            f"{args.scenes_per_worker * max(args.workers)} scenes; {root} has {len(all_scenes)}"
        )
    rows = []
    with prefect_server("flow" in args.runner):
        runs = itertools.product(
            range(args.repeat),
            args.frame_devices,
            args.runner,
            args.frames_per_task,
            args.workers,
            args.stores,
        )
        for attempt, frame_device, runner, frames_per_task, workers, kind in runs:
            name = f"store_w{workers}_{kind}_f{frames_per_task}_{frame_device}_{runner}_{attempt}"
            os.environ[FRAME_DEVICE_ENV] = frame_device  # the row's workers inherit it
            store = str(work / name) if kind == "local" else s3.url(f"bench/{name}-{time.time_ns()}")
            scenes = all_scenes[: args.scenes_per_worker * workers] if args.scenes_per_worker else None
            if runner == "flow":
                measured = flow_row(args, root, pairs, store, scenes, workers, frames_per_task)
            else:
                measured = processes_row(
                    args, root, pairs, store, scenes or all_scenes, workers, frames_per_task
                )
            rows.append(
                {
                    "runner": runner,
                    "store": kind,
                    "workers": workers,
                    "frames_per_task": frames_per_task,
                    "frame_device": frame_device,
                    **measured,
                }
            )
            print(row_line(rows[-1]), flush=True)
            if kind == "local":
                shutil.rmtree(store, ignore_errors=True)
    earlier = json.loads(Path(args.baseline).read_text())["rows"] if args.baseline else []
    return add_efficiency(median_rows(rows), earlier)


def row_line(row: dict) -> str:
    """A row's numbers as soon as it is measured: a run cut short (a GPU call's time limit) keeps what its
    output already shows, where the table and JSON come only at the end."""
    idle = " / ".join(map(str, row["idle_seconds_per_worker"].values()))
    return (
        f"row measured: {row['runner']} w{row['workers']} f{row['frames_per_task']} {row['frame_device']}: "
        f"{row['frames']} frames in {row['flow_seconds']} s = {row['frames_per_second']} frames/s, "
        f"{row['task_seconds_per_frame']} task s/frame, busy {row['busy_fraction']}, idle s/worker {idle}, "
        f"{row['mesh_builds']} mesh builds, {row.get('tasks_moved_by_stealing', 0)} moved by stealing"
        + _loop_text(row.get("flow_loop_seconds"))
    )


def _loop_text(loop: dict | None) -> str:
    """The flow loop's seconds per activity (flows.loop_clock), the longest step of each in brackets."""
    if not loop:
        return ""  # a processes row: no flow
    parts = (f"{name} {v['seconds']} ({v['longest']})" for name, v in loop.items())
    return "; flow loop s: " + ", ".join(parts)


@contextmanager
def prefect_server(needed: bool):
    """A local Prefect server with PREFECT_API_URL pointing at it, while the flow rows run (the processes rows
    need none). Prefect reads its settings at import: flows.preprocess is imported only inside."""
    if not needed:
        yield
        return
    from flows.prefect_env import LocalServer, drain_prefect_clients, free_port

    server = LocalServer(free_port()).start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield
    finally:
        drain_prefect_clients()
        server.stop()


def flow_row(
    args: argparse.Namespace,
    root: Path,
    pairs: Path | None,
    store: str,
    scenes: list[str] | None,
    workers: int,
    frames_per_task: int,
) -> dict:
    """The `preprocess` flow on its own cluster of `workers` (None scenes: all of them)."""
    from datasets.store.tables import read_table
    from flows.preprocess import run_preprocess

    started = time.perf_counter()
    with worker_cluster(workers) as (address, client):
        cluster_seconds = time.perf_counter() - started
        flow_started = time.time()  # the task stream's clock
        summary = run_preprocess(
            str(root),
            str(store),
            pairs=str(pairs) if pairs else None,
            scenes=scenes,
            target_resolution=args.target_resolution,
            dask_address=address,
            frames_per_task=frames_per_task,
        )
        flow_ended = time.time()
        busy = worker_busy_seconds(client)
        idle = worker_idle_seconds(client, flow_started, flow_ended)
        memory = worker_memory(client)
        moved = tasks_moved_by_stealing(client)
    wall = time.perf_counter() - started
    if summary["failed"]:
        raise SystemExit(f"benchmark scenes failed: {summary['failed']}")
    frames = summary["frames"]
    scenes_table = read_table(store, "scenes")
    stages = {
        c.removeprefix("seconds_"): round(float(scenes_table[c].sum()) / frames, 4)
        for c in scenes_table
        if c.startswith("seconds_")
    }
    commits = sorted(summary["commit_seconds"].values())
    busy_list = sorted(busy.values(), reverse=True) + [0.0] * (workers - len(busy))
    return {
        "frame_devices_used": memory["frame_devices"],
        "scenes": len(summary["done"]),
        "frames": frames,
        "cluster_start_seconds": round(cluster_seconds, 2),
        "flow_seconds": round(summary["seconds"], 2),
        "wall_seconds": round(wall, 2),
        "frames_per_second": round(frames / summary["seconds"], 3),
        "frames_per_second_wall": round(frames / wall, 3),
        "commit_seconds_median": round(statistics.median(commits), 4),
        "commit_seconds_max": round(commits[-1], 4),
        "task_seconds_per_frame_by_stage": stages,
        "task_seconds_per_frame": round(float(scenes_table["seconds"].sum()) / frames, 4),
        "worker_busy_seconds": [round(b, 2) for b in busy_list],
        "busy_fraction": round(sum(busy_list) / (workers * summary["seconds"]), 3),
        "idle_seconds_per_worker": idle,
        "peak_rss_mb_per_worker": sorted(memory["peak_rss_mb"], reverse=True),
        "mesh_builds": memory["mesh_builds"],
        "tasks_moved_by_stealing": moved,
        "flow_loop_seconds": summary["loop_seconds"],
    }


def tasks_moved_by_stealing(client) -> int:
    """Tasks that Dask's work stealing moved to another worker during the row (its cluster's whole life): the
    flow places every task itself, and a move would put its placement out of step with the workers."""
    return sum(1 for _, message in client.get_events("stealing") if message[0] == "confirm")


PRELOAD_TIMEOUT_SECONDS = 1800
"""How long the processes runner waits for its processes to start and preload (CUDA warm-up, cold imports on a
lent host) before it gives up on one that never reaches the barrier."""


def processes_row(
    args: argparse.Namespace,
    root: Path,
    pairs: Path | None,
    store: str,
    scenes: list[str],
    workers: int,
    frames_per_task: int,
) -> dict:
    """`scenes` with no orchestration: planned and staged here, then run by `workers` plain processes, scene i
    in process i % workers (`run_processes`). The keys of a flow row; task seconds from the scenes' attrs, as
    the flow's scenes table has them (the chunks' stage seconds summed, plus the commit's)."""
    from datasets.preprocess.frame_device import FRAME_DEVICE_ENV
    from datasets.preprocess.result import PreprocessConfig
    from datasets.store.reader import read_scene_attrs
    from flows.dask_cluster import allocator_env, worker_env

    started = time.perf_counter()
    config = PreprocessConfig(target_resolution=args.target_resolution)
    jobs = stage_scenes(root, pairs, store, scenes, config, frames_per_task)
    env = {**worker_env(), **allocator_env(), FRAME_DEVICE_ENV: os.environ[FRAME_DEVICE_ENV]}
    reports, start_seconds = run_processes([jobs[i::workers] for i in range(workers)], env)
    wall = time.perf_counter() - started
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise SystemExit("benchmark scenes failed in the plain processes:\n" + "\n".join(errors))
    released, ended = min(r["released"] for r in reports), max(r["ended"] for r in reports)
    seconds = ended - released
    results = [result for r in reports for result in r["results"]]
    frames = sum(result["frames"] for result in results)
    timings = [read_scene_attrs(store, result["scene_id"])["timings"] for result in results]
    commits = sorted(result["commit_seconds"] for result in results)
    busy = sorted((sum(stop - start for start, stop in r["spans"]) for r in reports), reverse=True)
    return {
        "frame_devices_used": sorted({r["frame_device"] for r in reports if r["frame_device"]}),
        "scenes": len(results),
        "frames": frames,
        "cluster_start_seconds": round(start_seconds, 2),  # spawn and preload
        "flow_seconds": round(seconds, 2),  # the timed part: barrier release to the last process's end
        "wall_seconds": round(wall, 2),
        "frames_per_second": round(frames / seconds, 3),
        "frames_per_second_wall": round(frames / wall, 3),
        "commit_seconds_median": round(statistics.median(commits), 4),
        "commit_seconds_max": round(commits[-1], 4),
        "task_seconds_per_frame_by_stage": stage_seconds_per_frame(timings, frames),
        "task_seconds_per_frame": round(sum(t["total"] for t in timings) / frames, 4),
        "worker_busy_seconds": [round(b, 2) for b in busy],
        "busy_fraction": round(sum(busy) / (workers * seconds), 3),
        "idle_seconds_per_worker": idle_seconds([r["spans"] for r in reports if r["spans"]], released, ended),
        "peak_rss_mb_per_worker": sorted((round(r["peak_rss_mb"], 1) for r in reports), reverse=True),
        "mesh_builds": sum(r["mesh_builds"] for r in reports),
    }


def stage_scenes(
    root: Path,
    pairs: Path | None,
    store: str,
    scenes: list[str],
    config: PreprocessConfig,
    frames_per_task: int,
) -> list[dict]:
    """Create the store, plan `scenes` and stage their frame chunks as the flow process does; one job per scene
    to run (in a fresh store: all of them, in order), with its chunks (`staged` None: one whole-scene task)."""
    from datasets.preprocess.chunk_job import stage_chunked_scene
    from datasets.preprocess.scene_job import plan_scenes
    from datasets.store.splits import scene_splits
    from datasets.store.writer import open_or_create_store

    root, pairs = Path(root).resolve(), Path(pairs).resolve() if pairs else None  # as the flow resolves them
    open_or_create_store(store)
    splits = scene_splits(root)
    jobs = []
    for plan in plan_scenes(store, root, scenes, pairs, config).to_run:
        staged = None
        # An unreadable input stays one whole-scene task, which fails with the reader's reason (as in the flow).
        if plan.source_hash is not None:
            staged = stage_chunked_scene(
                store, root, plan.scene_id, config, pairs, frames_per_task, plan.record
            )
        jobs.append(
            {
                "common": (str(root), store, plan.scene_id, config, str(pairs) if pairs else None),
                "split": splits.get(plan.scene_id, ""),
                "source_hash": plan.source_hash,
                "staged": staged,
            }
        )
    return jobs


def run_processes(shares: list[list[dict]], env: dict[str, str]) -> tuple[list[dict], float]:
    """One spawned process per share of scene jobs, started with `env` in its environment (glibc reads the
    allocator settings when a process starts), released together once all have preloaded. Their reports
    (`process_main`) and the seconds from the first spawn to the release."""
    import multiprocessing
    import queue
    import threading

    context = multiprocessing.get_context("spawn")  # a fresh interpreter, as a Dask worker is
    barrier = context.Barrier(len(shares) + 1)  # and this process, which notices one that never arrives
    reports = context.Queue()
    started = time.perf_counter()
    with environment(env):
        processes = [context.Process(target=process_main, args=(share, barrier, reports)) for share in shares]
        for process in processes:
            process.start()
    try:
        barrier.wait(timeout=PRELOAD_TIMEOUT_SECONDS)
    except threading.BrokenBarrierError:
        pass  # a process failed before the barrier and reports why
    start_seconds = time.perf_counter() - started
    collected = []
    while len(collected) < len(processes):
        try:
            collected.append(reports.get(timeout=5))
        except queue.Empty:
            # A process that exits with 0 has put its report: only a crash leaves none.
            died = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if died:
                for process in processes:
                    process.terminate()
                raise SystemExit(f"a benchmark process died without a report (exit codes {died})") from None
    for process in processes:
        process.join()
    return collected, start_seconds


def process_main(jobs: list[dict], barrier, reports) -> None:
    """A plain process of the processes runner: the flow workers' preload, the barrier, then its scene jobs
    in order. Puts one report into `reports`: clock times at release and end, each task call's (start, stop),
    the scenes' results, peak RSS, meshes built and the frame device used; or the error."""
    import traceback

    report: dict = {"spans": [], "results": [], "released": time.time()}
    try:
        # What the flow's workers preload: the tasks' modules, pyrender, the frame device (CUDA warm-up).
        import flows.preprocess_preload  # noqa: F401

        barrier.wait()
        report["released"] = time.time()
        for job in jobs:
            report["results"].append(run_scene_job(job, report["spans"]))
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the row with it
        barrier.abort()  # nobody waits for this process (no effect once they are released)
        report["error"] = traceback.format_exc()
    report.update(ended=time.time(), peak_rss_mb=_peak_rss_mb(), mesh_builds=_mesh_builds())
    report["frame_device"] = _frame_device() if "error" not in report else None
    reports.put(report)


def run_scene_job(job: dict, spans: list[tuple[float, float]]) -> dict:
    """One scene as the flow's tasks run it: every frame chunk in order, then the commit; or one whole-scene
    task. Each call's (start, stop) clock times join `spans` (what a task stream records as compute)."""
    from datasets.preprocess.chunk_job import commit_chunked_scene, run_frame_chunk
    from datasets.preprocess.scene_job import run_scene

    def timed(fn, *call_args):
        start = time.time()
        result = fn(*call_args)
        spans.append((start, time.time()))
        return result

    common, split, source_hash, staged = job["common"], job["split"], job["source_hash"], job["staged"]
    if staged is None:
        return timed(run_scene, *common, split, source_hash)
    chunk_results = [
        timed(run_frame_chunk, *common, source_hash, staged.staging, chunk) for chunk in staged.chunks
    ]
    return timed(commit_chunked_scene, *common, split, source_hash, staged.staging, chunk_results)


def stage_seconds_per_frame(timings: list[dict[str, float]], frames: int) -> dict[str, float]:
    """Each stage's seconds over the scenes' timings (attrs), per frame; `total` is the task seconds."""
    stages = sorted({stage for t in timings for stage in t if stage != "total"})
    return {stage: round(sum(t.get(stage, 0.0) for t in timings) / frames, 4) for stage in stages}


@contextmanager
def worker_cluster(workers: int):
    """(scheduler address, client) of a Dask LocalCluster built with exactly the settings the flow gives its
    own (`cluster_kwargs`), with the scheduler's task stream recording from the start."""
    from distributed import Client, LocalCluster

    with LocalCluster(**cluster_kwargs(workers)) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        client.get_task_stream(count=0)  # installs the scheduler's task-stream plugin
        yield cluster.scheduler_address, client


def cluster_kwargs(workers: int) -> dict:
    """The LocalCluster arguments the preprocess flow's own runner gives a local cluster of `workers` (its worker
    options, its scheduler without work stealing)."""
    from flows.dask_cluster import choose_cluster
    from flows.preprocess_runner import preprocess_task_runner

    return preprocess_task_runner(choose_cluster("local", workers)).cluster_kwargs


def worker_memory(client) -> dict:
    """Peak resident memory of each worker process over its life (the row's own cluster: the whole run), in
    MB, and the meshes the workers built (chunked scenes build one per worker that renders them)."""
    peaks = client.run(_peak_rss_mb)
    builds = client.run(_mesh_builds)
    devices = client.run(_frame_device)
    return {
        "peak_rss_mb": [round(v, 1) for v in peaks.values()],
        "mesh_builds": sum(builds.values()),
        "frame_devices": sorted({d for d in devices.values() if d}),
    }


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _mesh_builds() -> int:
    import sys

    module = sys.modules.get("datasets.preprocess.chunk_job")
    return getattr(module, "context_builds", 0)


def _frame_device() -> str | None:
    """Where this worker undistorted and rescaled its frames (None: it processed none)."""
    from datasets.preprocess.frame_device import current_frame_device

    return current_frame_device()


def worker_busy_seconds(client) -> dict[str, float]:
    """Seconds each worker spent computing tasks (the scheduler's task stream), by worker address."""
    busy: dict[str, float] = {}
    for record in client.get_task_stream(start=0):
        compute = sum(
            s["stop"] - s["start"] for s in record.get("startstops", ()) if s["action"] == "compute"
        )
        busy[record["worker"]] = busy.get(record["worker"], 0.0) + compute
    return busy


def worker_idle_seconds(client, flow_started: float, flow_ended: float) -> dict[str, float]:
    """`idle_seconds` of the flow's workers, from the scheduler's task stream."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for record in client.get_task_stream(start=flow_started):
        for s in record.get("startstops", ()):
            if s["action"] == "compute":
                spans.setdefault(record["worker"], []).append((s["start"], s["stop"]))
    return idle_seconds(list(spans.values()), flow_started, flow_ended)


def idle_seconds(spans: list[list[tuple[float, float]]], started: float, ended: float) -> dict[str, float]:
    """Where the workers waited during the run, in seconds averaged over the workers that ran a task (`spans`:
    each one's task (start, stop) times): `before_first_task` (run start to a worker's first compute),
    `between_tasks` (gaps between its tasks: scheduling and Prefect's task-run bookkeeping) and
    `after_last_task` (its last compute to the run's end: the tail of the slowest worker, the commits and the
    tables)."""
    if not spans:
        return {"before_first_task": 0.0, "between_tasks": 0.0, "after_last_task": 0.0}
    before, between, after = [], [], []
    for worker_spans in spans:
        worker_spans = sorted(worker_spans)
        before.append(worker_spans[0][0] - started)
        after.append(ended - max(stop for _, stop in worker_spans))
        covered = worker_spans[-1][1] - worker_spans[0][0]
        between.append(covered - sum(stop - start for start, stop in worker_spans))
    return {
        "before_first_task": round(statistics.mean(before), 2),
        "between_tasks": round(statistics.mean(between), 2),
        "after_last_task": round(statistics.mean(after), 2),
    }


def add_efficiency(rows: list[dict], earlier: list[dict] = ()) -> list[dict]:
    """scaling_efficiency = frames/s at w workers / (w / w0 x frames/s at w0), w0 the fewest workers measured
    for that runner, store kind, task size and frame device (`_kind`), here or in `earlier` rows (1 when
    measured: throughput(w) / (w x throughput(1)))."""
    for row in rows:
        same = [r for r in [*earlier, *rows] if _kind(r) == _kind(row)]
        base = min(same, key=lambda r: r["workers"])
        ideal = base["frames_per_second"] * row["workers"] / base["workers"]
        row["scaling_efficiency"] = round(row["frames_per_second"] / ideal, 3)
    return rows


def _kind(row: dict) -> tuple:
    """What a row's efficiency is relative to: the same runner, store kind, task size and frame device (older
    JSONs: the flow, one task per scene, the CPU)."""
    return (
        row.get("runner", "flow"),
        row["store"],
        row.get("frames_per_task", 0),
        row.get("frame_device", "auto"),
    )


def median_rows(rows: list[dict]) -> list[dict]:
    """One row per (runner, store, frames per task, frame device, workers): the median of every number over
    the repeats (stages of the first)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((*_kind(row), row["workers"]), []).append(row)
    merged = []
    for group in groups.values():
        row = dict(group[0], runs=len(group))
        for key, value in group[0].items():
            if isinstance(value, float):
                row[key] = round(statistics.median(r[key] for r in group), 4)
        merged.append(row)
    return merged


def report(args: argparse.Namespace, rows: list[dict], generation: dict | None = None) -> dict:
    """The table on stdout and, with the settings and the machine, as JSON and Markdown under --out (and the
    JSON at --json). Returns the result."""
    slowest = sorted(rows[0]["task_seconds_per_frame_by_stage"].items(), key=lambda kv: -kv[1])[:5]
    print("task seconds per frame by stage (1st run):", ", ".join(f"{k} {v:.3f}" for k, v in slowest))
    base = rows[0]["frames_per_second"]
    for row in rows:
        row["speedup"] = round(row["frames_per_second"] / base, 2)
    header = [
        "runner", "store", "frame_device", "frames_per_task", "workers", "scenes", "frames", "flow_seconds", "wall_seconds", "frames_per_second", "speedup",
        "scaling_efficiency", "task_seconds_per_frame", "busy_fraction", "commit_seconds_median",
        "commit_seconds_max", "peak_rss_mb_per_worker", "mesh_builds",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row.get(h, "")) for h in header) + " |" for row in rows]
    stages = sorted({stage for row in rows for stage in row["task_seconds_per_frame_by_stage"]})
    lines += [
        "",
        "| runner | frame_device | frames_per_task | workers | " + " | ".join(stages) + " |",
        "|" + "---|" * (len(stages) + 4),
    ]
    lines += [
        f"| {row['runner']} | {row['frame_device']} | {row['frames_per_task']} | {row['workers']} | " + " | ".join(str(row["task_seconds_per_frame_by_stage"].get(s, "")) for s in stages)
        + " |"
        for row in rows
    ]  # fmt: skip
    lines += [
        "",
        "worker busy seconds: "
        + "; ".join(f"{r['runner']} {r['workers']}: {r['worker_busy_seconds']}" for r in rows),
        "idle seconds per worker (before the first task / between tasks / after the last): "
        + "; ".join(
            f"{r['runner']} {r['workers']}: {' / '.join(map(str, r['idle_seconds_per_worker'].values()))}"
            for r in rows
        ),
    ]
    table = "\n".join(lines)
    machine = machine_description()
    generator = {} if args.root else generator_settings(args)  # --root: scenes made elsewhere
    settings = f"{rows[-1]['scenes']} scenes x {generator.get('frames', '?')} frames, target resolution {args.target_resolution}"
    print(f"\npreprocess benchmark on {machine} ({settings})\n{table}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # Settings without local paths: the result file may be committed.
    paths = ("root", "pairs", "out", "json", "keep_root", "baseline")
    # With --root the scenes were made elsewhere: the generator's flags (at their defaults) describe nothing.
    generator_only = ("scenes", "preset", "frames", "seed", "image_size", "mesh_faces", "objects", "camera_model",
                      "gen_workers")  # fmt: skip
    dropped = paths + (generator_only if args.root else ())
    kept = {k: v for k, v in vars(args).items() if k not in dropped}
    kept["baseline_workers"] = (
        sorted({r["workers"] for r in json.loads(Path(args.baseline).read_text())["rows"]})
        if args.baseline
        else []
    )
    kept["own_root"] = bool(args.root)
    result = {
        "machine": machine,
        "label": args.label,
        "settings": kept,
        "generator": generator,
        "generation": generation or {},
        "rows": rows,
        "time": stamp,
    }
    (out / f"preprocess-{stamp}.json").write_text(json.dumps(result, indent=1))
    (out / f"preprocess-{stamp}.md").write_text(
        f"preprocess benchmark on {machine} ({settings})\n\n{table}\n"
    )
    print(f"results written to {out}/preprocess-{stamp}.json and .md")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"and to {args.json}")
    return result


if __name__ == "__main__":
    sys.exit(main())

"""The torchrun worker in one process (no torchrun): reads the run config, trains, logs, exports."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy_store import write_toy_store

from datasets.store.integrity import CorruptSceneError
from flows import torchrun_worker
from flows.run_config import prepare_run
from flows.run_folder import DATA_ERROR_FILE
from flows.torchrun_worker import report_data_error

REPO = Path(__file__).resolve().parents[3]
SMALL = [
    "data.samples_per_epoch=4",
    "data.resolutions=[[64,48]]",
    "criterion.num_points=128",
    "training.num_workers=0",
    "training.print_freq=1",
    "training.epochs=1",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_toy_store(tmp_path_factory.mktemp("store") / "s", scenes=1, frames=4, image_size=(96, 72))


def test_run_trains_logs_and_exports_an_inference_checkpoint(store, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    plan = prepare_run([store], "synthetic_cpu", SMALL, "w", tmp_path)
    summary = torchrun_worker.run(plan.run_dir, "cpu")
    assert summary["global_step"] == 2 and summary["world_size"] == 1
    assert json.loads((plan.run_dir / "result.json").read_text()) == summary
    logs = [json.loads(line) for line in (plan.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logs if r["kind"] == "log"]
    assert [r["step"] for r in steps] == [1, 2]
    assert {"panoptic_loss", "loss_ce", "loss_mask", "loss_dice", "lr"} <= set(steps[0])

    from panst3r_core.checkpoint.ours import load_checkpoint

    loaded = load_checkpoint(summary["exported_model"])
    assert loaded.metadata["text_embeddings"] == "hashed"
    assert loaded.metadata["class_names"][:2] == ["wall", "floor"]


def test_missing_config_and_unknown_embedder_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        torchrun_worker.read_run_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"text_embeddings": "clip"}}))
    with pytest.raises(ValueError, match="text_embeddings"):
        torchrun_worker.read_run_config(tmp_path)


@pytest.mark.slow
def test_module_entry_point_exits_cleanly_without_torchrun(store, tmp_path):
    plan = prepare_run([store], "synthetic_cpu", SMALL, "m", tmp_path)
    command = [
        sys.executable,
        "-m",
        "flows.torchrun_worker",
        "--run-dir",
        str(plan.run_dir),
        "--device",
        "cpu",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((plan.run_dir / "result.json").read_text())["global_step"] == 2
    assert "training finished" in result.stderr


def test_time_budget_stops_without_export_and_the_next_launch_finishes(store, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    plan = prepare_run([store], "synthetic_cpu", [*SMALL, "training.time_budget_s=0"], "b", tmp_path)
    first = torchrun_worker.run(plan.run_dir, "cpu")
    # A spent budget stops after the first of the two optimizer steps: checkpoint-last, no export.
    assert (first["finished"], first["start_step"], first["global_step"]) == (False, 0, 1)
    assert first["exported_model"] is None and first["final_checkpoint"] is None
    assert not (plan.run_dir / "model-final").exists()
    assert (plan.run_dir / "checkpoint-last" / "meta.json").is_file()
    assert json.loads((plan.run_dir / "result.json").read_text()) == first
    second = torchrun_worker.run(plan.run_dir, "cpu")
    assert (second["finished"], second["start_step"], second["global_step"]) == (True, 1, 2)
    assert Path(second["exported_model"]).is_dir() and second["loop_seconds"] >= 0


class _DamagedDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        raise CorruptSceneError(f"store S: scene aaa, camera dslr, array images, frame {index} is corrupt", "aaa")


@pytest.mark.parametrize("workers", [0, 1])
def test_damaged_data_is_reported_in_one_line_even_from_a_loader_worker(tmp_path, workers):
    loader = torch.utils.data.DataLoader(_DamagedDataset(), num_workers=workers)
    with pytest.raises(CorruptSceneError) as caught:
        next(iter(loader))
    report_data_error(tmp_path, caught.value)
    written = json.loads((tmp_path / DATA_ERROR_FILE).read_text())
    assert written == {"message": "store S: scene aaa, camera dslr, array images, frame 0 is corrupt"}

"""What each process of `panst3r preprocess` imports before it needs it (start-up time, issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]


def _modules_after(statement: str, names: tuple[str, ...]) -> dict[str, bool]:
    """Which of `names` a fresh interpreter has loaded after `statement` (a fresh one: this test process
    has imported plenty already)."""
    probe = f"import json, sys\n{statement}\nprint(json.dumps({{n: n in sys.modules for n in {names!r}}}))"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYOPENGL_PLATFORM": "egl"}
    result = subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_the_cli_starts_the_server_and_cluster_before_importing_prefect_or_dask():
    # Everything `panst3r preprocess` runs before its flow import: prefect must come after PREFECT_API_URL.
    loaded = _modules_after(
        "import flows.cli.main, flows.cli.preprocess, flows.early_cluster, flows.prefect_env",
        ("prefect", "distributed", "torch", "mlflow"),
    )
    assert loaded == {"prefect": False, "distributed": False, "torch": False, "mlflow": False}


def test_the_flow_process_and_the_worker_preload_never_import_torch_or_mlflow():
    loaded = _modules_after(
        "import flows.preprocess, flows.preprocess_preload", ("torch", "mlflow", "pyrender")
    )
    assert loaded == {"torch": False, "mlflow": False, "pyrender": True}, "the preload brings pyrender in"


def test_the_flow_process_loads_the_tables_and_image_libraries_only_once_tasks_run():
    # With warm workers the CLI's own imports are most of a run's start: pandas (the tables, needed once
    # tasks run) and the image libraries (the workers' business) stay out of them.
    loaded = _modules_after(
        "import flows.cli.preprocess, flows.warm_workers, flows.preprocess",
        ("pandas", "pyarrow", "cv2", "PIL", "pyrender"),
    )
    assert not any(loaded.values()), loaded

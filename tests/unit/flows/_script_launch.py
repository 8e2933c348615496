"""The run-folder launch with a Python script in torchrun's place (its last argument is the run folder).

Imported by the launch tests; run as a file (`python _script_launch.py RUN_DIR SCRIPT`) it is a launcher in a
process of its own, for the tests that signal the launcher.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from flows.run_folder import TorchrunLaunch, launch


@dataclass(frozen=True)
class ScriptLaunch(TorchrunLaunch):
    script: str = ""

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.run_dir)]


if __name__ == "__main__":
    launch(ScriptLaunch(Path(sys.argv[1]), script=sys.argv[2]), on_line=lambda line: print(line, flush=True))

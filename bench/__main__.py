"""Run every benchmark in bench/ (``python -m bench`` or ``make bench``); each prints its own figures."""

import subprocess
import sys
from pathlib import Path

for script in sorted(Path(__file__).parent.glob("bench_*.py")):
    print(f"\n== {script.name}", flush=True)
    subprocess.run([sys.executable, str(script)], check=True)

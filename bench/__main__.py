"""Run every benchmark in bench/ (``python -m bench`` or ``make bench``) and gather their headline figures.

Each ``bench_*.py`` prints its own detailed figures; the rows it records (``bench/summary.py``) are printed at the
end as one table and written to ``bench/results.md`` with the machine they were measured on.
Usage: ``python -m bench [NAME …]`` (e.g. ``python -m bench app training``) runs only those scripts.
"""

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results.md"


def machine() -> str:
    """CPU model, cores, memory, Python and torch versions: where the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import torch

    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}{load}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"{platform.system()} {platform.release()}"
    )


def table(rows: list[dict]) -> str:
    lines = ["| area | what | figure | goal |", "|---|---|---|---|"]
    for row in rows:
        mark = "" if row["met"] is None else (" ✓" if row["met"] else " ✗")
        lines.append(f"| {row['area']} | {row['what']} | {row['figure']} | {row['goal']}{mark} |")
    return "\n".join(lines)


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = []
    with tempfile.TemporaryDirectory() as work:
        results = Path(work) / "rows.jsonl"
        results.touch()
        env = {**os.environ, "BENCH_RESULTS": str(results)}
        for script in scripts:
            print(f"\n== {script.name}", flush=True)
            if subprocess.run([sys.executable, str(script)], env=env).returncode != 0:
                failed.append(script.name)
        rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    when = datetime.date.today().isoformat()
    text = f"Measured {when} on {machine()}.\n\n{table(rows)}\n"
    if failed:
        text += f"\nFailed: {', '.join(failed)}.\n"
    print("\n== summary\n" + text)
    if not names:  # a partial run does not overwrite the full table
        RESULTS.write_text("# Benchmark results\n\n`python -m bench` wrote this file.\n\n" + text)
        print(f"wrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

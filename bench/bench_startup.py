"""Benchmark: how long operator commands take before doing anything, next to a bare Flask app.

Method (printed with the figures):
- Each command is started ROUNDS times, the commands interleaved round by round so a busy machine
  weighs on all alike; the median wall time and the median CPU time (user + system of the child) are
  printed. Development settings, SQLite in a temporary directory, nothing else configured.
- Ours: `flask --app wsgi redcap push --help` (the issue's figure), `flask --app wsgi --help`, and
  `python -c "import wsgi"` (what a gunicorn worker and the scheduler do first: build the app).
- Baseline: `flask --app bare --help` on a one-route Flask app (the framework's own start-up).

Target (issue 17): `flask --app wsgi … --help` under 1 s.
Run: .venv/bin/python bench/bench_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLASK = str(Path(sys.executable).with_name("flask"))
BARE_APP = """
from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello():
    return "hello"
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run; the command must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-1000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "bare.py").write_text(BARE_APP)
        env = dict(os.environ)
        env.update(
            {
                "FOLLOWUP_ENV": "development",
                "SECRET_KEY": "bench-secret-key-not-for-production",
                "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
                "INSTANCE_PATH": str(tmp / "instance"),
                "LOG_LEVEL": "WARNING",
            }
        )
        targets = [
            ("bare Flask: flask --app bare --help", [FLASK, "--app", "bare", "--help"], tmp),
            (
                "flask --app wsgi redcap push --help",
                [FLASK, "--app", "wsgi", "redcap", "push", "--help"],
                ROOT,
            ),
            ("flask --app wsgi --help", [FLASK, "--app", "wsgi", "--help"], ROOT),
            ('python -c "import wsgi" (app built)', [sys.executable, "-c", "import wsgi"], ROOT),
        ]
        for _, cmd, cwd in targets:  # warm the file cache and the bytecode
            timed(cmd, cwd, env)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in targets}
        for _ in range(args.rounds):
            for name, cmd, cwd in targets:
                results[name].append(timed(cmd, cwd, env))

    load1, load5, _ = os.getloadavg()
    print(
        f"machine load average at the end: {load1:.1f} (1 min), {load5:.1f} (5 min) on {os.cpu_count()} CPUs"
    )
    print(f"{'command':<40} {'wall s':>8} {'CPU s':>8}   (medians of {args.rounds})")
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        medians[name] = wall
        print(f"{name:<40} {wall:>8.2f} {cpu:>8.2f}")
    worst = max(medians["flask --app wsgi redcap push --help"], medians["flask --app wsgi --help"])
    print()
    print(f"--help: {worst:.2f} s  (target < 1 s)  -> {'ok' if worst < 1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

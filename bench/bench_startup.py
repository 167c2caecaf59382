"""Benchmark: how long operator commands take before doing anything, next to a bare Flask app.

Method (printed with the figures):
- Each command is started ROUNDS times, the commands interleaved round by round so a busy machine
  weighs on all alike; the median wall time and the median CPU time (user + system of the child) are
  printed. Development settings, SQLite in a temporary directory, nothing else configured.
- Ours: `flask --app wsgi redcap push --help` (the issue's figure), `flask --app wsgi --help`,
  `flask --app wsgi sms --help`; `python -c "import wsgi"` (what a gunicorn worker does first: build the
  whole app); the scheduler, `flask --app wsgi scheduler`, from launch to its "starting" log line (app
  built, checks passed, jobs about to be scheduled); gunicorn with one worker, from launch to the first
  answer of `GET /healthz`. The two servers are stopped with SIGTERM once ready.
- Baseline: `flask --app bare --help` on a one-route Flask app (the framework's own start-up, with the
  installed Flask plugins' commands, as ours).
- `--compare DIR`: the same commands also from another checkout (e.g. /work/main, the code before a
  change), interleaved with ours in the same rounds, so before and after share the machine's load.

Target (issue 17): `flask --app wsgi … --help` under 1 s; scheduler and gunicorn start-up no slower.
Run: .venv/bin/python bench/bench_startup.py [--rounds 7] [--compare ../main]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
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
HELP_TARGETS = (
    "flask --app wsgi redcap push --help",
    "flask --app wsgi --help",
    "flask --app wsgi sms --help",
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run; the command must succeed."""
    before = _cpu()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.decode()[-1000:]}")
    return wall, _cpu() - before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until_ready(
    cmd: list[str], cwd: Path, env: dict[str, str], ready: Callable[[Path], bool], log: Path
) -> tuple[float, float]:
    """(seconds from launch until `ready(log)`, CPU seconds of the whole run); stopped with SIGTERM."""
    before = _cpu()
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = start + 60
            while not ready(log):
                if proc.poll() is not None or time.perf_counter() > deadline:
                    raise SystemExit(f"{' '.join(cmd)} did not start: {log.read_text()[-1000:]}")
                time.sleep(0.01)
            wall = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return wall, _cpu() - before


def scheduler_ready(log: Path) -> bool:
    """The scheduler has built its app and passed its checks: it says it is starting."""
    return b"starting" in log.read_bytes()


def answers(port: int) -> Callable[[Path], bool]:
    """Whether gunicorn on `port` answers `GET /healthz` at all (503 without a heartbeat is fine)."""

    def ready(_log: Path) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return True
        except urllib.error.HTTPError as exc:
            exc.close()
            return True
        except OSError:
            return False

    return ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--compare", type=Path, help="another checkout to time beside this one (e.g. ../main)"
    )
    args = parser.parse_args()
    checkouts = [("", ROOT)] + ([(f" [{args.compare}]", args.compare.resolve())] if args.compare else [])
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        (tmp / "bare.py").write_text(BARE_APP)
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # each checkout imports its own code, from its own directory
        env.update(
            {
                "FOLLOWUP_ENV": "development",
                "SECRET_KEY": "bench-secret-key-not-for-production",
                "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
                "INSTANCE_PATH": str(tmp / "instance"),
                "LOG_LEVEL": "WARNING",
                "WEB_CONCURRENCY": "1",
            }
        )
        server_env = dict(env, LOG_LEVEL="INFO")
        subprocess.run(
            [FLASK, "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        targets: list[tuple[str, Callable[[], tuple[float, float]]]] = [
            (
                "bare Flask: flask --app bare --help",
                lambda: timed([FLASK, "--app", "bare", "--help"], tmp, env),
            )
        ]
        for suffix, root in checkouts:

            def run(cmd: list[str], root: Path = root) -> Callable[[], tuple[float, float]]:
                return lambda: timed(cmd, root, env)

            def scheduler(root: Path = root) -> tuple[float, float]:
                cmd = [FLASK, "--app", "wsgi", "scheduler"]
                return until_ready(cmd, root, server_env, scheduler_ready, tmp / "scheduler.log")

            def gunicorn(root: Path = root) -> tuple[float, float]:
                port = _free_port()
                cmd = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
                genv = dict(env, GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_ACCESS_LOG="/dev/null")
                return until_ready(cmd, root, genv, answers(port), tmp / "gunicorn.log")

            targets += [
                (
                    "flask --app wsgi redcap push --help" + suffix,
                    run([FLASK, "--app", "wsgi", "redcap", "push", "--help"]),
                ),
                ("flask --app wsgi --help" + suffix, run([FLASK, "--app", "wsgi", "--help"])),
                ("flask --app wsgi sms --help" + suffix, run([FLASK, "--app", "wsgi", "sms", "--help"])),
                ('python -c "import wsgi" (app built)' + suffix, run([sys.executable, "-c", "import wsgi"])),
                ("scheduler: launch to 'starting'" + suffix, scheduler),
                ("gunicorn: launch to first /healthz" + suffix, gunicorn),
            ]
        for _, measure in targets:  # warm the file cache and the bytecode
            measure()
        results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in targets}
        load_start = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, measure in targets:
                results[name].append(measure())

    load1, load5, _ = os.getloadavg()
    print(
        f"machine load average: {load_start:.1f} at the start, {load1:.1f} (1 min) and {load5:.1f} (5 min) "
        f"at the end, on {os.cpu_count()} CPUs"
    )
    width = max(len(name) for name in results) + 2
    print(f"{'command':<{width}} {'wall s':>8} {'CPU s':>8}   (medians of {args.rounds})")
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        medians[name] = wall
        print(f"{name:<{width}} {wall:>8.2f} {cpu:>8.2f}")
    worst = max(medians[name] for name in HELP_TARGETS)
    bare = medians["bare Flask: flask --app bare --help"]
    print()
    print(
        f"--help: {worst:.2f} s, {worst / bare:.1f}x the bare Flask app  (target < 1 s)  -> "
        f"{'ok' if worst < 1 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the questionnaire page and its submit POST under load, next to a bare Flask "hello" route.

Method (printed with the figures):
- Both apps are served the same way: gunicorn with the project's gunicorn.conf.py (sync workers, 2 each
  unless WEB_CONCURRENCY says otherwise, access log to /dev/null) on 127.0.0.1, SQLite (WAL) in a
  temporary directory.
- The service runs in its development configuration with CSRF on and the token-guess rate limit on
  (only failed lookups count), the trial's questionnaire stored, and PARTICIPANTS participants each
  with an open visit and an issued link (half in English, half in Chinese).
- GET load: `wrk` (C, Debian's package; `make bench` installs it) with THREADS threads and CONNECTIONS
  connections, after WARM_UP seconds of untimed load on each server. Both servers run at once and the
  two GET targets are measured in alternating slices (ROUNDS), so a busy machine weighs on both alike:
  1. GET /hello on the bare app (baseline);
  2. GET /s/<token> (the whole questionnaire page), each connection cycling over the tokens.
  Requests/s = requests / seconds over all slices; p50/p99 over every request of the slices (each
  slice's 1,000 latency quantiles merged, weighted by its requests); any non-2xx answer is an error.
- POST load (a Python generator of PROCS processes x 4 threads, one connection per request): a complete,
  valid questionnaire, each with its own fresh token, session cookie and CSRF token (fetched before
  the timed phase); every POST must end on the thank-you page.

Targets (issues 5 and 17): page >= 0.5 x the bare route's throughput with p99 < 50 ms; submissions >= 200/s.
Run: .venv/bin/python bench/bench_questionnaire.py [--seconds 12] [--participants 4000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from wrk_runner import WRK_QUANTILES_LUA, WRK_TOKENS_LUA, wrk, wrk_summary  # noqa: E402

BARE_APP = """
from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello():
    return "hello"
"""
WARM_UP = 4.0  # seconds of untimed load first: workers boot after the bind and warm their caches
WORKERS = "2"  # gunicorn sync workers per server, for both alike (WEB_CONCURRENCY overrides)
ANSWERS = {
    "fu_fever": "0",
    "fu_mmrc": "1",
    "fu_cough": "1",
    "fu_sneezing": "0",
    "fu_diarrhea": "0",
    "fu_spo2": "97",
    "fu_readmitted": "0",
    "fu_ae___1": "1",
    "fu_health_today": "80",
    "fu_comments": "Feeling better",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "FOLLOWUP_ENV": "development",
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
            "INSTANCE_PATH": str(tmp / "instance"),
            "LOG_LEVEL": "WARNING",
            "GUNICORN_ACCESS_LOG": "/dev/null",
            "SMS_BACKEND": "console",
            "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY") or WORKERS,
        }
    )
    return env


def seed(env: dict[str, str], participants: int) -> list[str]:
    """Schema, the trial's questionnaire, and participants with open visits and links; returns tokens."""
    os.environ.update(env)
    import json

    from app import create_app
    from app.extensions import db
    from app.models import Participant, Visit, utcnow
    from app.participants.links import issue_link
    from app.questionnaire.store import save_metadata

    app = create_app("development")
    tokens: list[str] = []
    with app.app_context():
        db.create_all()
        rows = json.loads((ROOT / "tests" / "fixtures" / "metadata" / "trial_project.json").read_text())
        now = utcnow()
        save_metadata(rows, app.config["REDCAP_QUESTIONNAIRE_INSTRUMENT"], now)
        for n in range(participants):
            p = Participant(
                record_id=f"B{n:06d}",
                phone_e164=f"+861380013{8000 + n % 1000}",
                phone_status="ok",
                language="zh" if n % 2 else "en",
                timezone="Asia/Shanghai",
                sms_consent=True,
                anchor_date=(now - timedelta(days=27)).date(),
            )
            visit = Visit(
                participant=p,
                visit_key="week_4",
                event_name="week_4_arm_1",
                target_date=(now + timedelta(days=1)).date(),
                window_start=(now - timedelta(days=2)).date(),
                window_end=(now + timedelta(days=8)).date(),
                opens_at=now - timedelta(days=2),
                closes_at=now + timedelta(days=8),
                status="open",
            )
            db.session.add_all([p, visit])
            db.session.flush()
            tokens.append(issue_link(visit, now))
        db.session.commit()
        db.engine.dispose()
    return tokens


class Server:
    """gunicorn on a free loopback port with the project's config, stopped with SIGTERM."""

    def __init__(self, target: str, cwd: Path, env: dict[str, str]):
        self.port = free_port()
        env = dict(env, GUNICORN_BIND=f"127.0.0.1:{self.port}")
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), target]
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.workers = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError as exc:
                if self.proc.poll() is not None:
                    raise SystemExit(
                        f"gunicorn {target} exited: {self.proc.stderr.read().decode()[-2000:]}"
                    ) from exc
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def one(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, data, response.getheader("Set-Cookie")
    finally:
        conn.close()


def _worker(args) -> tuple[list[float], int, int]:
    """One generator process: THREADS threads share a job list (or run for `seconds` over it cyclically)."""
    port, method, jobs, seconds, threads, expect = args
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    state = {"i": 0}
    stop_at = time.perf_counter() + seconds
    cycle = method == "GET"

    def run() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            with lock:
                i = state["i"]
                state["i"] += 1
            if i >= len(jobs) and not cycle:
                return
            path, body, headers = jobs[i % len(jobs)]
            start = time.perf_counter()
            status, data, _ = one(port, method, path, body, headers)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if status != 200 or (expect and expect not in data):
                    errors += 1

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies, errors, len(latencies)


def run(port: int, method: str, jobs: list, seconds: float, procs: int, threads: int, expect: bytes = b""):
    """Run the generator once; returns (latencies in seconds, errors, wall seconds)."""
    shards = [jobs[i::procs] for i in range(procs)] if len(jobs) >= procs else [jobs] * procs
    start = time.perf_counter()
    with ProcessPoolExecutor(procs) as pool:
        results = list(pool.map(_worker, [(port, method, s, seconds, threads, expect) for s in shards]))
    wall = time.perf_counter() - start
    return [x for r in results for x in r[0]], sum(r[1] for r in results), wall


def summary(runs: list[tuple[list[float], int, float]]):
    """(requests/s, p50 ms, p99 ms, errors, count) over one or more runs."""
    latencies = sorted(x for r in runs for x in r[0])
    errors = sum(r[1] for r in runs)
    wall = sum(r[2] for r in runs)
    count = len(latencies)
    if not count:
        return 0.0, 0.0, 0.0, errors, 0
    p50 = latencies[int(0.50 * (count - 1))] * 1000
    p99 = latencies[int(0.99 * (count - 1))] * 1000
    return count / wall, p50, p99, errors, count


def prepare_posts(port: int, tokens: list[str]) -> list[tuple[str, bytes, dict]]:
    """Each POST's session cookie and CSRF token, from a GET of its page (not timed)."""
    jobs = []
    for token in tokens:
        status, html, cookies = one(port, "GET", f"/s/{token}")
        match = re.search(rb'name="csrf_token" value="([^"]+)"', html)
        session = re.search(r"(?:^|, )(session=[^;]+)", cookies or "")
        if status != 200 or not match or not session:
            raise SystemExit(f"could not prepare a POST (status {status})")
        body = urlencode(dict(ANSWERS, csrf_token=match.group(1).decode())).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": session.group(1),
        }
        jobs.append((f"/s/{token}", body, headers))
    return jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="per target (GETs in --rounds slices)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating slices of the two GET targets")
    parser.add_argument("--participants", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--procs", type=int, default=2, help="POST generator processes (4 threads each)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench does it when root)")

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env = app_env(tmp)
        (tmp / "bare.py").write_text(BARE_APP)
        print(f"seeding {args.participants} participants with open visits and links …", flush=True)
        tokens = seed(env, args.participants)
        page_tokens, post_tokens = tokens[: len(tokens) // 4], tokens[len(tokens) // 4 :]
        (tmp / "tokens.txt").write_text("\n".join(page_tokens) + "\n")
        (tmp / "tokens.lua").write_text(WRK_TOKENS_LUA + WRK_QUANTILES_LUA)
        (tmp / "hello.lua").write_text(WRK_QUANTILES_LUA)
        print(
            f"gunicorn workers: {env['WEB_CONCURRENCY']} each (sync); "
            f"wrk: {args.threads} threads, {args.connections} connections"
        )

        bare = Server("bare:app", tmp, env)
        ours = Server("wsgi:app", ROOT, env)
        try:
            gen = (args.threads, args.connections)
            page = (tmp / "tokens.lua", (str(tmp / "tokens.txt"),))
            hello_script = tmp / "hello.lua"
            wrk(bare.port, "/hello", WARM_UP, *gen, hello_script)  # every worker booted and warm
            wrk(ours.port, "/", WARM_UP, *gen, *page)
            # Alternate short slices of the two GET targets, so both see the same machine load.
            hello_runs, page_runs = [], []
            slice_seconds = args.seconds / args.rounds
            for _ in range(args.rounds):
                hello_runs.append(wrk(bare.port, "/hello", slice_seconds, *gen, hello_script))
                page_runs.append(wrk(ours.port, "/", slice_seconds, *gen, *page))
            hello, page_figures = wrk_summary(hello_runs), wrk_summary(page_runs)
            post_jobs = prepare_posts(ours.port, post_tokens)
            post = summary([run(ours.port, "POST", post_jobs, args.seconds, args.procs, 4, b'id="thanks"')])
        finally:
            bare.stop()
            ours.stop()

    print()
    load1, load5, _ = os.getloadavg()
    cpus = os.cpu_count()
    print(f"machine load average at the end: {load1:.1f} (1 min), {load5:.1f} (5 min) on {cpus} CPUs")
    print(f"{'target':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'requests':>9}")
    for name, (rps, p50, p99, errors, count) in (
        ("bare Flask GET /hello (baseline)", hello),
        ("GET /s/<token> (questionnaire)", page_figures),
        ("POST /s/<token> (submit)", post),
    ):
        print(f"{name:<34} {rps:>8.0f} {p50:>8.1f} {p99:>8.1f} {errors:>7} {count:>9}")
    ratio = page_figures[0] / hello[0] if hello[0] else 0.0
    print()
    verdict = "ok" if ratio >= 0.5 else "MISSED"
    print(f"page throughput / bare route: {ratio:.2f}  (target >= 0.50)  -> {verdict}")
    p99 = page_figures[2]
    print(f"page p99: {p99:.1f} ms  (target < 50 ms)  -> {'ok' if p99 < 50 else 'MISSED'}")
    print(f"submissions: {post[0]:.0f}/s  (target >= 200/s)  -> {'ok' if post[0] >= 200 else 'MISSED'}")
    if page_figures[3] or post[3] or hello[3]:
        print("ERRORS: some requests did not return the expected page")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

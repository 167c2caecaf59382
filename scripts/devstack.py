"""`make run`: the whole service on one machine with embedded defaults.

Starts the local REDCap-compatible API (seeded with fictitious demo participants), migrates
the SQLite database, creates the demo logins, pulls the roster, prints a fresh personal link for
every open demo visit (the SMS reminders wait for the participants' send window, so at some hours
these are the only links shown), then runs the web app and the scheduler as separate processes
until Ctrl-C. With SMS_BACKEND=aliyun or tencent it also starts that provider's local server with
the study's template texts and points the app at it (scripts/devstack_sms.py). Nothing here is used
in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as `python scripts/devstack.py`: the project root is the import root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.devstack_sms import PORTS, provider_stack

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WEB_PORT = int(os.environ.get("WEB_PORT", "5000"))
REDCAP_PORT = int(os.environ.get("REDCAP_PORT", "8081"))
DEV_REDCAP_TOKEN = "DEV0123456789ABCDEF0123456789ABC"  # noqa: S105 - the local fake's token (32 characters, like REDCap's), not a secret


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("FOLLOWUP_ENV", "development")
    env.setdefault("REDCAP_API_URL", f"http://127.0.0.1:{REDCAP_PORT}/api/")
    env.setdefault("REDCAP_API_TOKEN", DEV_REDCAP_TOKEN)
    env.setdefault("REDCAP_DET_SECRET", "dev-det-secret")
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{WEB_PORT}")
    env.setdefault("SMS_BACKEND", "console")
    env.setdefault("ONCALL_PHONES", "+15550100")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if env["SMS_BACKEND"] in PORTS:
        for name, value in provider_stack(env["SMS_BACKEND"], env)[1].items():
            env.setdefault(name, value)
    return env


def _flask(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=_env(), check=check)


def _flask_output(*args: str) -> str:
    result = subprocess.run(
        [PY, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
    return result.stdout


def _has_command(*args: str) -> bool:
    result = subprocess.run(
        [PY, "-m", "flask", "--app", "wsgi", *args, "--help"], cwd=ROOT, env=_env(), capture_output=True
    )
    return result.returncode == 0


def _wait_for(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - loopback URL we built
            return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error means the server answers
                return
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


def main() -> int:
    procs: list[subprocess.Popen] = []

    def stop(*_: object) -> None:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        procs.append(
            subprocess.Popen(
                [
                    PY,
                    "-m",
                    "devservers.redcap_api",
                    "--port",
                    str(REDCAP_PORT),
                    "--project",
                    "study",
                    "--token",
                    DEV_REDCAP_TOKEN,
                    "--seed-demo",
                ],
                cwd=ROOT,
                env=_env(),
            )
        )
        _wait_for(f"http://127.0.0.1:{REDCAP_PORT}/_control")
        backend = _env()["SMS_BACKEND"]
        if backend in PORTS:
            argv, _ = provider_stack(backend, _env())
            procs.append(subprocess.Popen([PY, *argv], cwd=ROOT, env=_env()))
            _wait_for(f"http://127.0.0.1:{PORTS[backend]}/_control")
        _flask("db", "upgrade")
        logins = _flask_output("demo", "user")
        if _has_command("roster", "sync"):
            _flask("redcap", "refresh-metadata", check=False) if _has_command(
                "redcap", "refresh-metadata"
            ) else None
            _flask("roster", "sync", check=False)
        links = _flask_output("demo", "links")
        procs.append(
            subprocess.Popen(
                [PY, "-m", "flask", "--app", "wsgi", "run", "--host", "127.0.0.1", "--port", str(WEB_PORT)],
                cwd=ROOT,
                env=_env(),
            )
        )
        if _has_command("scheduler"):
            procs.append(
                subprocess.Popen([PY, "-m", "flask", "--app", "wsgi", "scheduler"], cwd=ROOT, env=_env())
            )
        _wait_for(f"http://127.0.0.1:{WEB_PORT}/healthz")
        print(
            "\n"
            f"  Coordinator console:  http://127.0.0.1:{WEB_PORT}/console/\n"
            + "".join(f"  {line.strip()}\n" for line in logins.splitlines() if line.strip())
            + f"  Local REDCap API:     http://127.0.0.1:{REDCAP_PORT}/api/  (records: /_control/records)\n"
            + links
            + (
                f"  Texts go to the local {backend} SMS server (http://127.0.0.1:{PORTS[backend]}/_control),"
                " inside the participants' send window; mainland numbers only.\n"
                if backend in PORTS
                else "  Console SMS from the scheduler also appear below, inside the participants' send"
                " window.\n"
            )
            + "  Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())

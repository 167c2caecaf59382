"""`wrk` for the benchmarks: run it with a Lua script, read its figures, merge the slices of one target.

Split from bench_questionnaire.py; any benchmark that drives an HTTP server with wrk can use it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

# Each wrk connection walks the token list from its own offset, one request after another.
WRK_TOKENS_LUA = """
local paths = {}
local n = 0
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = "/s/" .. line end
  n = math.random(#paths)
end
function request()
  n = n % #paths + 1
  return wrk.format("GET", paths[n])
end
"""
# Every slice writes its latency distribution (1,000 quantiles, in microseconds), so the slices of one
# target can be merged into one distribution and its p50/p99 read over every request.
WRK_QUANTILES_LUA = """
function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_QUANTILES"), "w")
  for i = 1, 1000 do out:write(latency:percentile(i / 10), "\\n") end
  out:close()
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if not match:
        raise SystemExit(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    port: int,
    path: str,
    seconds: float,
    threads: int,
    connections: int,
    script: Path,
    script_args: tuple[str, ...] = (),
) -> dict:
    """One wrk run: requests, seconds, errors (non-2xx, socket errors) and 1,000 latency quantiles (ms)."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    cmd += ["-s", str(script), f"http://127.0.0.1:{port}{path}"]
    if script_args:
        cmd += ["--", *script_args]
    quantiles = script.with_suffix(".quantiles")
    env = dict(os.environ, WRK_QUANTILES=str(quantiles))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    done = re.search(r"(\d+) requests in ([0-9.]+)(us|ms|s)", out)
    if not done:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return {
        "requests": int(done.group(1)),
        "seconds": _ms(done.group(2) + done.group(3)) / 1000,
        "errors": errors,
        "quantiles": [float(line) / 1000 for line in quantiles.read_text().split()],
    }


def wrk_summary(runs: list[dict]):
    """(requests/s, p50 ms, p99 ms, errors, count) over slices, the percentiles over every request:
    each slice's quantiles stand for its requests in equal shares."""
    count = sum(r["requests"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    weighted = sorted((q, r["requests"]) for r in runs for q in r["quantiles"])
    total = sum(w for _, w in weighted)

    def percentile(p: float) -> float:
        seen = 0
        for value, weight in weighted:
            seen += weight
            if seen >= p * total:
                return value
        return weighted[-1][0] if weighted else 0.0

    return (
        count / seconds if seconds else 0.0,
        percentile(0.50),
        percentile(0.99),
        sum(r["errors"] for r in runs),
        count,
    )

"""Child processes of a benchmark run: started on free ports, always stopped, their CPU read
from /proc; and the exit hook that stops them and runs every cleanup, on failure and Ctrl-C too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench-results"
PROJECT_PYTHON = Path(sys.executable)
TOOLS_VENV = RESULTS_DIR / "venv"
TOOLS_REQUIREMENTS = ROOT / "benchmarks" / "requirements-tools.txt"
# Ports `make run` may hold: never used here.
_RESERVED = {8080, 8090, 9101, 9102, 9103, 9104}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


_LOG_FILES: list[Path] = []


def log(message: str) -> None:
    line = f"[bench {time.strftime('%H:%M:%S')}] {message}"
    print(line, file=sys.stderr, flush=True)
    for path in _LOG_FILES:
        with path.open("a") as handle:
            handle.write(line + "\n")


def log_to(path: Path) -> None:
    """Keep this run's log lines (vhosts made, code resolved, figures) beside its results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _LOG_FILES.append(path)


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _RESERVED:
            return port


def load_tool_prefix() -> list[str]:
    """Run load tools one nice level group ahead (-5) when allowed: on 2 shared cores a starved
    generator would otherwise add its own lag to every latency (it plays Meta, which does not
    share our CPUs). Services keep the default priority."""
    return ["nice", "-n", "-5"] if os.geteuid() == 0 else []


def tools_python() -> Path:
    """The benchmark's own venv (pywa, Flask, py-spy, uvloop), created on first use and
    reinstalled whenever the requirements file changes."""
    python = TOOLS_VENV / "bin" / "python"
    stamp = TOOLS_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == TOOLS_REQUIREMENTS.read_text():
        return python
    log(f"installing the benchmark tools into {TOOLS_VENV} (once)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
    subprocess.run(
        [
            *(str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("-r", str(TOOLS_REQUIREMENTS)),
        ],
        check=True,
        timeout=900,
    )
    stamp.write_text(TOOLS_REQUIREMENTS.read_text())
    return python


# --- stopping everything, whatever happens ---------------------------------------------------

_CLEANUPS: list[Callable[[], None]] = []
_PROCESSES: list[subprocess.Popen[bytes]] = []


def on_exit(cleanup: Callable[[], None]) -> None:
    """Run ``cleanup`` at exit unless ``done(cleanup)`` ran it first."""
    _CLEANUPS.append(cleanup)


def done(cleanup: Callable[[], None]) -> None:
    if cleanup in _CLEANUPS:
        _CLEANUPS.remove(cleanup)


def _terminate_all() -> None:
    for proc in list(_PROCESSES):
        stop_process(proc)
    for cleanup in list(reversed(_CLEANUPS)):
        with contextlib.suppress(Exception):
            cleanup()
    _CLEANUPS.clear()


def install_signal_handlers() -> None:
    """SIGTERM unwinds like Ctrl-C, so that every ``with`` block and the exit hook clean up.

    Only the first signal does: a second Ctrl-C, or the SIGTERM a parent harness forwards after
    the terminal's Ctrl-C reached both, must not cut the deleting of vhosts and keys short.
    A SIGINT ignored from the start (a background job) stays ignored.
    """
    stopping = False

    def on_signal(signum: int, _: object) -> None:
        nonlocal stopping
        if stopping:
            log(f"signal {signum}: already stopping, cleaning up first")
            return
        stopping = True
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_signal)
    atexit.register(_terminate_all)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(5)
    if proc in _PROCESSES:
        _PROCESSES.remove(proc)


# --- CPU ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds a process used so far, in user space and in the kernel on its behalf."""

    user: float = 0.0
    system: float = 0.0

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def cpu_times(pid: int) -> CpuTimes:
    """utime and stime of ``pid`` from /proc (all its threads); zero when it is gone."""
    try:
        # The command name may hold spaces and parentheses: fields start after the last ")".
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return CpuTimes(int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS)
    except (OSError, IndexError, ValueError):
        return CpuTimes()


def broker_pid() -> int | None:
    """The local RabbitMQ node's Erlang VM, so that its share of the two cores is reported.

    Matched by its boot argument: every ``rabbitmqctl`` call runs a short-lived beam.smp of its
    own whose command line names rabbit too.
    """
    found = subprocess.run(
        ["pgrep", "-f", r"beam\.smp.* -s rabbit boot"], capture_output=True, text=True
    )
    pids = [int(x) for x in found.stdout.split()]
    return pids[0] if pids else None


def redis_pid(url: str) -> int | None:
    """The Redis server behind ``url`` as it reports itself (local Redis only)."""
    import redis

    try:
        client = redis.Redis.from_url(url)
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()
    except Exception:
        return None


# --- services ---------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc)

    def cpu(self) -> CpuTimes:
        return cpu_times(self.pid)


def start(
    name: str,
    argv: list[str],
    env: dict[str, str],
    *,
    log_dir: Path,
    ready_url: str | None = None,
    ready_timeout: float = 60.0,
) -> Service:
    """Start ``argv`` with this environment minus any HIKER_* and PYTHONPATH, plus ``env``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("HIKER_") and k != "PYTHONPATH"
    }
    full_env.update(env)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            # Its own session: Ctrl-C reaches the harness, which stops it after the load tools.
            start_new_session=True,
        )
    _PROCESSES.append(proc)
    service = Service(name, proc, log_path)
    if ready_url:
        try:
            wait_ready(service, ready_url, ready_timeout)
        except BaseException:
            service.stop()
            raise
    return service


def wait_ready(service: Service, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            tail = service.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{service.name} exited ({service.proc.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} not ready at {url} after {timeout}s")

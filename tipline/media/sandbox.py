"""The sandbox a received file is cleaned in: a fresh process per file, no key, no network.

Every file an informant sends is parsed by large decoders (FFmpeg, Poppler, LibreOffice,
Pillow). None of them runs in the worker, which holds the service keys. :func:`run` starts one
child per file under bubblewrap (``bwrap``):

- namespaces: ``--unshare-all`` (network, PID, IPC, UTS, cgroup and user), so the child has a
  loopback interface only and cannot reach anything; ``--die-with-parent``; ``--new-session``.
- file system: read-only binds of the system (``/usr``, a few files of ``/etc``) and of the
  Python that runs the cleaning program; the received file read-only at ``/input/file``; an
  empty ``/output`` it may write; a private tmpfs ``/tmp``. Nothing else: not the data dir,
  not the file store, not the configuration.
- environment: cleared (``--clearenv``, and an empty one for bwrap itself): no secret, no
  ``TIPLINE_*``, no ``ZALO_*``; only ``PATH``, ``HOME=/tmp`` and ``LANG``.
- limits (:class:`Limits`, set before ``exec`` and inherited by every process inside): CPU
  seconds, address space, size of any file written, open files, no core dumps, a process
  count, and a wall-clock timeout after which the whole process group is killed. The process
  count is ``RLIMIT_NPROC``; root is exempt from it, so when the worker runs as root (CI) the
  child is also put in a cgroup with ``pids.max`` where the cgroup file system allows it.

A child that is killed, times out or exceeds a limit is a :class:`Outcome` with ``limited``
set; the caller records it as a refusal, and the worker carries on.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import signal
import subprocess  # bwrap with a fixed argument list, no shell  # nosec B404
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BWRAP = "bwrap"
CLEANER = Path(__file__).with_name("cleaner.py")
SANDBOX_CLEANER = "/sandbox/cleaner.py"
SANDBOX_TMP = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox  # nosec B108
INPUT = "/input/file"
OUTPUT = "/output"
# Files of /etc the tools need (dynamic linker cache, fonts for LibreOffice's rendering);
# not /etc as a whole: it may hold a deployment's secrets.
ETC = (
    "/etc/ld.so.cache", "/etc/fonts", "/etc/alternatives", "/etc/localtime", "/etc/libreoffice",
)
PIDS_CGROUPS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 120  # per process
    memory_bytes: int = 3 * 1024**3  # address space per process (LibreOffice maps a lot)
    file_bytes: int = 512 * 1024**2  # the largest file any process may write
    processes: int = 256  # processes and threads (x264 and LibreOffice use threads)
    open_files: int = 512
    wall_seconds: float = 240.0


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    outputs: dict[str, bytes] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def limited(self) -> bool:
        """Stopped by a limit: killed by a signal (SIGKILL, SIGXCPU, SIGXFSZ…) or timed out."""
        return self.timed_out or self.returncode < 0 or self.returncode >= 128


class SandboxUnavailable(Exception):
    """bubblewrap is missing or cannot make its namespaces here: nothing is parsed unsandboxed."""


def _python_binds() -> list[str]:
    """Read-only binds that let the sandbox run this Python with its installed packages."""
    candidates = sorted(
        {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent},
        key=lambda p: len(p.parts),
    )
    chosen: list[Path] = []
    for path in candidates:
        if path == Path("/usr") or Path("/usr") in path.parents or path == Path("/"):
            continue  # bound with /usr already
        if any(path == c or c in path.parents for c in chosen):
            continue
        chosen.append(path)
    binds: list[str] = []
    for path in chosen:
        binds += ["--ro-bind", str(path), str(path)]
    return binds


def bwrap_argv(command: Sequence[str], input_path: Path, output_dir: Path) -> list[str]:
    argv = [
        BWRAP, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
        "--symlink", "usr/lib", "/lib",
    ]
    if Path("/lib64").exists():
        argv += ["--symlink", "usr/lib64", "/lib64"]
    # The private /tmp first: a bind below /tmp (a virtualenv in a checkout under /tmp, as a
    # CI clone is) mounted before it would be hidden by it.
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP]
    for path in ETC:
        if Path(path).exists():
            argv += ["--ro-bind", path, path]
    argv += _python_binds()
    argv += [
        "--ro-bind", str(CLEANER), SANDBOX_CLEANER,
        "--ro-bind", str(input_path), INPUT,
        "--bind", str(output_dir), OUTPUT,
        "--chdir", SANDBOX_TMP,
        "--setenv", "PATH", "/usr/bin:/bin",
        "--setenv", "HOME", SANDBOX_TMP,
        "--setenv", "LANG", "C.UTF-8",
        "--uid", "65534", "--gid", "65534",  # "nobody" inside
        "--",
        *command,
    ]
    return argv


def cleaner_command(kind: str) -> list[str]:
    """The cleaning program for a file of coarse ``kind`` (image, av, pdf, office)."""
    return [sys.executable, "-I", SANDBOX_CLEANER, INPUT, OUTPUT, kind]


def _pids_cgroup(limit: int) -> Path | None:
    """A fresh cgroup capped at ``limit`` processes, when we may make one (root); else None."""
    if os.geteuid() != 0:
        return None  # RLIMIT_NPROC applies to everyone else
    for base in PIDS_CGROUPS:
        if not (base / "cgroup.procs").exists():
            continue
        if base == Path("/sys/fs/cgroup"):  # v2: the pids controller must be delegated
            try:
                if "pids" not in (base / "cgroup.subtree_control").read_text().split():
                    continue
            except OSError:
                continue
        group = base / f"tipline-sandbox-{secrets.token_hex(6)}"
        try:
            group.mkdir()
            (group / "pids.max").write_text(str(limit))
        except OSError:
            try:
                group.rmdir()
            except OSError:
                pass
            continue
        return group
    return None


def _drop_cgroup(group: Path | None) -> None:
    if group is None:
        return
    for _ in range(50):
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.02)  # the last processes are still being reaped


def run(
    command: Sequence[str],
    data: bytes,
    limits: Limits | None = None,
    *,
    work_root: Path | None = None,
) -> Outcome:
    """Run ``command`` in a fresh sandbox that sees ``data`` at ``/input/file``; return what
    it printed and the files it left in ``/output``."""
    limits = limits or Limits()
    if shutil.which(BWRAP) is None:
        raise SandboxUnavailable("bwrap is not installed")
    work = Path(tempfile.mkdtemp(prefix="tipline-clean-", dir=work_root))
    group: Path | None = None
    try:
        os.chmod(work, 0o700)
        input_path = work / "input"
        output_dir = work / "output"
        output_dir.mkdir(mode=0o700)
        input_path.write_bytes(data)
        os.chmod(input_path, 0o400)
        group = _pids_cgroup(limits.processes)

        def confine() -> None:  # in the child, before exec: inherited by everything inside
            if group is not None:
                (group / "cgroup.procs").write_text(str(os.getpid()))
            for kind, value in (
                (resource.RLIMIT_CPU, limits.cpu_seconds),
                (resource.RLIMIT_AS, limits.memory_bytes),
                (resource.RLIMIT_FSIZE, limits.file_bytes),
                (resource.RLIMIT_NOFILE, limits.open_files),
                (resource.RLIMIT_CORE, 0),
                (resource.RLIMIT_NPROC, limits.processes),
            ):
                resource.setrlimit(kind, (value, value))

        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell  # nosec B603
            bwrap_argv(command, input_path, output_dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={},  # bwrap itself gets no environment either
            preexec_fn=confine,  # a few system calls, no locks taken
            start_new_session=True,
            close_fds=True,
        )
        timed_out = False
        try:
            stdout, stderr = process.communicate(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            stdout, stderr = process.communicate()
        seconds = time.monotonic() - started
        if process.returncode == 1 and b"bwrap:" in stderr and not stdout:
            raise SandboxUnavailable(stderr.decode("utf-8", "replace").strip()[:300])
        outputs = {
            path.name: path.read_bytes()
            for path in output_dir.iterdir()
            if path.is_file() and not path.is_symlink()
        }
        return Outcome(process.returncode, stdout, stderr, timed_out, outputs, seconds)
    finally:
        _drop_cgroup(group)
        shutil.rmtree(work, ignore_errors=True)

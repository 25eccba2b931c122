"""`systemctl` for tests/test_deploy_path.py: the units docs/deploy.md installs, started as
systemd would start them, without systemd.

``python -m tests.deploy_systemd daemon-reload | enable --now UNIT… | start UNIT… |
restart UNIT… | stop UNIT… | disable --now UNIT… | reload nginx``

A unit is read from ``$DEPLOY_ROOTFS/etc/systemd/system`` (where the docs' ``cp`` put it), with
its drop-ins (``UNIT.d/*.conf``). What is applied: ``Environment=`` then ``EnvironmentFile=``
(which overrides, as in systemd), ``LoadCredential=`` (copied, 0600, into the unit's own
credentials directory, ``%d``), ``%i``, ``%t``, ``RuntimeDirectory=``, ``StateDirectory=``,
``WorkingDirectory=``, ``ExecStart=`` with ``$VAR`` expanded from the unit's environment. What
is not: ``User=``, the sandboxing (``systemd-analyze verify`` checks those). Paths are mapped
to the test's scratch root by ``$DEPLOY_PATHS`` (a JSON list of [from, to] pairs, applied in
order). A started unit runs in a session of its own; its pid is kept in
``$DEPLOY_STATE/UNIT.pid`` and its output in ``$DEPLOY_STATE/UNIT.log``. ``Type=notify``
units are waited for until their port answers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOTFS = Path(os.environ.get("DEPLOY_ROOTFS", "/nonexistent"))
STATE = Path(os.environ.get("DEPLOY_STATE", "/nonexistent"))
PATHS: list[list[str]] = json.loads(os.environ.get("DEPLOY_PATHS", "[]"))
UNITS = ROOTFS / "etc/systemd/system"


def mapped(text: str) -> str:
    for source, target in PATHS:
        text = text.replace(source, target)
    return text


def _directives(path: Path) -> list[tuple[str, str, str]]:
    out, section = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith(("#", ";")) and "=" in line:
            key, value = line.split("=", 1)
            out.append((section, key.strip(), value.strip()))
    return out


def _unit_files(name: str) -> tuple[list[Path], str]:
    instance = ""
    file = name if name.endswith(".service") else f"{name}.service"
    if "@" in file:
        prefix, rest = file.split("@", 1)
        instance = rest.removesuffix(".service")
        file = f"{prefix}@.service"
    main = UNITS / file
    if not main.exists():
        raise SystemExit(f"Unit {name}.service not found.")
    drop_ins = sorted((UNITS / f"{file}.d").glob("*.conf"))
    drop_ins += sorted((UNITS / f"{name.removesuffix('.service')}.service.d").glob("*.conf"))
    return [main, *dict.fromkeys(drop_ins)], instance


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip('"')
    return values


def _expand(word: str, env: dict[str, str]) -> list[str]:
    """systemd's ``$VAR`` (split into words, dropped when empty) and ``${VAR}`` (one word)."""
    whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
    if whole:
        return env.get(whole.group(1), "").split()
    return [re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word)]


def start(name: str) -> None:
    files, instance = _unit_files(name)
    unit = name.removesuffix(".service")
    settings = [d for f in files for d in _directives(f) if d[0] == "Service"]
    credentials = STATE / "credentials" / unit
    runtime_dir = STATE / "run"
    runtime_dir.mkdir(parents=True, exist_ok=True)

    def specifiers(value: str) -> str:
        value = value.replace("%i", instance).replace("%d", str(credentials))
        return mapped(value.replace("%t", str(runtime_dir)))

    env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "HOME": str(STATE),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    env_files: dict[str, str] = {}
    exec_start = ""
    cwd = "/"
    notify = False
    for _section, key, value in settings:
        value = specifiers(value)
        if key == "Environment":
            for assignment in shlex.split(value):
                name_, _sep, setting = assignment.partition("=")
                env[name_] = setting
        elif key == "EnvironmentFile":
            optional = value.startswith("-")
            path = Path(value.lstrip("-"))
            if path.exists():
                env_files.update(_read_env_file(path))
            elif not optional:
                raise SystemExit(f"{unit}: {path} missing")
        elif key == "LoadCredential":
            ident, _sep, source = value.partition(":")
            credentials.mkdir(parents=True, exist_ok=True, mode=0o700)
            target = credentials / ident
            try:
                shutil.copyfile(source, target)
            except OSError as exc:
                raise SystemExit(f"{unit}: credential {ident}: {exc}") from None
            target.chmod(0o600)
        elif key == "ExecStart":
            exec_start = value
        elif key == "WorkingDirectory":
            cwd = value.lstrip("-")
        elif key == "RuntimeDirectory":
            (runtime_dir / value).mkdir(parents=True, exist_ok=True, mode=0o700)
        elif key == "StateDirectory":
            mapped_state = Path(mapped(f"/var/lib/{value}"))
            mapped_state.mkdir(parents=True, exist_ok=True, mode=0o700)
        elif key == "Type":
            notify = value == "notify"
    env.update(env_files)  # EnvironmentFile= overrides Environment=, as in systemd
    words = [w for word in shlex.split(exec_start.lstrip("-@+")) for w in _expand(word, env)]
    log = open(STATE / f"{unit}.log", "ab")
    proc = subprocess.Popen(
        words, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    (STATE / f"{unit}.pid").write_text(str(proc.pid))
    if notify:
        _wait_ready(unit, proc, words, env)


def _port(words: list[str], env: dict[str, str]) -> int:
    if "--port" in words:
        return int(words[words.index("--port") + 1])
    if "TIPLINE_BIND" in env:
        return int(env["TIPLINE_BIND"].split(",")[0].rsplit(":", 1)[1])
    return 6379


def _wait_ready(
    unit: str, proc: subprocess.Popen[bytes], words: list[str], env: dict[str, str]
) -> None:
    port = _port(words, env)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log = (STATE / f"{unit}.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"{unit} did not start (port {port}):\n{log}")
        time.sleep(0.1)


def stop(name: str) -> None:
    unit = name.removesuffix(".service")
    pid_file = STATE / f"{unit}.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink()


def reload_nginx() -> None:
    """The docs' `systemctl reload nginx`: the test's nginx (tests/test_deploy_path.py) in the
    foreground, started on the first reload and told to reload after."""
    command = shlex.split(os.environ["DEPLOY_NGINX"])
    pid_file = STATE / "nginx.pid"
    if pid_file.exists():
        subprocess.run([*command, "-s", "reload"], check=True)
        return
    log = open(STATE / "nginx.log", "ab")
    proc = subprocess.Popen(
        [*command, "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    time.sleep(0.5)
    if proc.poll() is not None:
        raise SystemExit("nginx did not start:\n" + (STATE / "nginx.log").read_text())


def main(args: list[str]) -> None:
    if not args:
        raise SystemExit("usage: systemctl COMMAND [UNIT…]")
    command, rest = args[0], [a for a in args[1:] if not a.startswith("-")]
    now = "--now" in args
    if command == "daemon-reload":
        return
    if command == "reload" and rest == ["nginx"]:
        reload_nginx()
        return
    for unit in rest:
        if not _unit_present(unit):
            print(f"Unit {unit}.service not loaded (not installed here).", file=sys.stderr)
            continue
        if command == "start" or (command == "enable" and now):
            start(unit)
        elif command == "stop" or (command == "disable" and now):
            stop(unit)
        elif command == "restart":
            stop(unit)
            start(unit)
        elif command not in ("enable", "disable"):
            raise SystemExit(f"systemctl {command}: not played by the deploy test")


def _unit_present(name: str) -> bool:
    try:
        _unit_files(name)
    except SystemExit:
        return False
    return True


if __name__ == "__main__":
    main(sys.argv[1:])

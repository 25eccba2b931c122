"""`tipline demo`, `tipline serve` and `tipline worker`: the processes of a deployment."""

from __future__ import annotations

import os
import sys

import click

from tipline.cli.context import runtime
from tipline.config import Config


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo(host: str, port: int) -> None:
    """Run web, worker and Zalo simulator on embedded defaults with demo data."""
    from tipline.demo import run_demo

    sys.exit(run_demo(host, port))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn workers")
@click.option("--intake-only", is_flag=True, help="Only the webhook and health check.")
def serve(host: str, port: int, workers: int, intake_only: bool) -> None:
    """Run the web app under gunicorn."""
    config = Config.from_env()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"{host}:{port}",
        # The default control socket is one per user, shared by every gunicorn on the machine.
        "--no-control-socket",
        "--access-logfile",
        "-",
        "--access-logformat",
        '%(t)s "%(m)s %(U)s" %(s)s %(L)ss',  # paths only: search words stay out of logs
        # JSON lines with time, level and request id, ids in paths redacted (tipline.logs).
        "--logger-class",
        "tipline.logs.GunicornLogger",
        "tipline.wsgi_intake:app" if intake_only else "tipline.wsgi:app",
    ]
    if config.simulator:
        # Zalo's API takes `access_token` and `secret_key` headers, which gunicorn drops by
        # default (underscores); the simulator must see them as Zalo's servers would. Only in
        # simulator mode: Tipline's own routes never read a header with an underscore.
        args[-1:-1] = ["--header-map", "dangerous"]
    if config.redis_url:
        os.execv(sys.executable, args)  # noqa: S606 - gunicorn takes over this process  # nosec B606
    # Embedded Redis lives as long as this process: start it, then run gunicorn as a child.
    import subprocess

    from tipline.redis_conn import embedded_redis_url

    env = {**os.environ, "TIPLINE_REDIS_URL": embedded_redis_url(config.data_dir)}
    sys.exit(subprocess.call(args, env=env))  # noqa: S603 - our gunicorn command line  # nosec B603


@click.command()
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker (with scheduler, outbox relay and sweeper)."""
    from tipline.jobs.worker import run_worker

    run_worker(runtime(), list(queues) or None, burst=burst)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9108, show_default=True, type=int)
def metrics(host: str, port: int) -> None:
    """Serve Prometheus metrics (/metrics) on an internal address: never publish it."""
    from tipline.metrics import serve_metrics

    serve_metrics(runtime(), host, port)

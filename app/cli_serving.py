"""CLI commands of the online side: serve, worker, features push, ab report."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown

from app.cli_security import refuse_unsafe_exposure
from app.errors import UsageError
from app.security.exposure import mask_url
from app.settings import Settings, get_settings

console = Console()
log = logging.getLogger("marquee.cli")

features_app = typer.Typer(help="Online feature store.", no_args_is_help=True)
ab_app = typer.Typer(help="Experiments.", no_args_is_help=True)


def _client(settings: Settings):
    from app.service import redis_client

    if not settings.redis_url:
        raise UsageError("set MARQUEE_REDIS_URL (e.g. redis://127.0.0.1:6379/0) for this command")
    client = redis_client(settings.redis_url, timeout_s=5.0)
    try:
        client.ping()
    except Exception as exc:
        raise UsageError(f"cannot reach Redis at {mask_url(settings.redis_url)}: {exc}") from None
    return client


def serve_cmd(
    host: str = typer.Option(None, help="Bind address (default: settings, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default: settings, 8000)."),
    workers: int = typer.Option(1, min=1, help="Server processes (each loads the bundle)."),
    with_worker: bool = typer.Option(
        True, help="Also run the nearline event consumer in each server process (Redis only)."
    ),
) -> None:
    """Serve the feed API (docs at /docs) until interrupted."""
    import uvicorn

    settings = get_settings()
    os.environ["MARQUEE_SERVE_WORKER"] = "1" if with_worker else "0"  # read by each process
    host, port = host or settings.host, port or settings.port
    refuse_unsafe_exposure(settings, host)
    redis = mask_url(settings.redis_url) if settings.redis_url else None
    mode = f"Redis {redis}" if redis else "in-process store (no Redis)"
    console.print(f"serving on http://{host}:{port} ({mode}); API docs at /docs")
    uvicorn.run(
        "ui.server:create_app",  # the API with the UI mounted
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def worker_cmd(
    consumer: str = typer.Option(None, help="Consumer name (default: host-pid)."),
    batch: int = typer.Option(256, min=1, help="Entries per read."),
    claim_idle_ms: int = typer.Option(
        30_000, min=0, help="Take over entries another consumer left pending this long."
    ),
) -> None:
    """Consume the event stream and update nearline features until interrupted."""
    from features.nearline import RedisNearline
    from features.worker import StreamWorker, WorkerConfig

    settings = get_settings()
    client = _client(settings)
    worker = StreamWorker(
        client,
        settings.redis_prefix,
        RedisNearline(client, settings.redis_prefix),
        consumer=consumer,
        config=WorkerConfig(batch=batch, claim_idle_ms=claim_idle_ms),
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"worker {worker.consumer} consuming {worker.stream}")
    worker.run(stop)
    console.print(f"stopped; applied {worker.applied} events, acknowledged {worker.acked}")


@features_app.command("push")
def features_push(
    dataset: str = typer.Option(None, help="Catalog to push (default: the served one)."),
) -> None:
    """Load batch features (user long-term, item static and dynamic) into Redis."""
    from catalog.tables import load_catalog
    from features.batch import push_batch_features
    from features.store import RedisFeatureStore

    settings = get_settings()
    client = _client(settings)
    catalog = load_catalog(dataset or settings.dataset, settings)
    store = RedisFeatureStore(client, settings.redis_prefix)
    with console.status(f"pushing batch features of {catalog.name}"):
        counts = push_batch_features(catalog, store)
    client.set(f"{settings.redis_prefix}:batch-features", catalog.version)
    console.print(", ".join(f"{group}: {n:,} rows" for group, n in counts.items()))


@ab_app.command("report")
def ab_report_cmd(
    out: Path = typer.Option(None, help="Folder for the Markdown and plot (default reports/)."),
) -> None:
    """Compare experiment variants on click and like rate, from the stored events."""
    from app.experiments import DEFAULT_EXPERIMENTS, load_experiments
    from evaluation.ab_report import ab_report
    from features.events import RedisEventLog

    settings = get_settings()
    try:
        config = (
            load_experiments(settings.experiments_path)
            if settings.experiments_path
            else DEFAULT_EXPERIMENTS
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    log_ = RedisEventLog(_client(settings), settings.redis_prefix)
    with console.status("reading stored events"):
        rows = [e.model_dump(mode="json") for e in log_.read_all()]
    if not rows:
        raise UsageError("no events stored yet; nothing to compare")
    report = ab_report(rows, control=config.control)
    text = f"# A/B report: {config.name}\n\n{len(rows):,} events.\n\n{report.markdown()}"
    console.print(Markdown(text))
    folder = out or Path(settings.artifacts_dir) / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (folder / f"ab-{config.name}-{stamp}.md").write_text(text + "\n")
    plot = folder / f"ab-{config.name}-{stamp}.png"
    _plot(report, plot)
    console.print(f"saved {folder / f'ab-{config.name}-{stamp}.md'} and {plot}")


def _plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report.variants)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, metric in zip(axes, ("click_rate", "like_rate"), strict=True):
        est = [getattr(report.variants[n], metric) for n in names]
        values = [e.value for e in est]
        errors = [[e.value - e.ci_low for e in est], [e.ci_high - e.value for e in est]]
        ax.bar(names, values, yerr=errors, capsize=4, color="#4c72b0")
        ax.set_title(f"{metric.replace('_', ' ')} (95% CI, users as units)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

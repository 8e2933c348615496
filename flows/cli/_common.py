"""Set-up shared by the commands that run Prefect flows: common flags, argument checks, the Prefect env."""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Iterable
from pathlib import Path


def add_prefect_port_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prefect-port",
        type=int,
        default=4200,
        help="port of a local Prefect server to reuse (default 4200)",
    )


def add_overrides_argument(parser: argparse.ArgumentParser, what: str = "config") -> None:
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help=f"{what} overrides, e.g. training.epochs=2"
    )


def check_override_syntax(overrides: Iterable[str]) -> None:
    """ValueError for an override without '=' (the keys themselves are checked against the config later)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. training.epochs=2)")


STORE_HELP_SUFFIX = (
    "; a directory or s3://BUCKET/PREFIX (an S3-compatible server: AWS_* variables, --s3-endpoint)"
)
S3_ENDPOINT_ENV = "AWS_ENDPOINT_URL"


def add_s3_endpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--s3-endpoint",
        default=None,
        metavar="URL",
        help=f"S3-compatible server of s3:// stores, e.g. http://127.0.0.1:8333 (sets {S3_ENDPOINT_ENV} for this "
        "run and the processes it starts; credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    )


def use_s3_endpoint(args: argparse.Namespace) -> None:
    """Apply --s3-endpoint: the environment is what every client and every child process reads."""
    if getattr(args, "s3_endpoint", None):
        os.environ[S3_ENDPOINT_ENV] = args.s3_endpoint
        os.environ.pop("AWS_ENDPOINT_URL_S3", None)  # it would win over the flag


def require_store(store: str | Path) -> None:
    """FileNotFoundError unless `store` is a store `panst3r preprocess` wrote (a folder, or an object-store
    prefix holding a store's repository)."""
    from datasets.store.backend import backend_for
    from datasets.store.location import StoreLocation

    location = StoreLocation.parse(store)
    missing = not Path(store).is_dir() if location.is_local else not backend_for(location).exists()
    if missing:
        raise FileNotFoundError(f"--store {store} does not exist; run `panst3r preprocess --store` first")


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def unwind_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so that `finally` blocks stop a Prefect server this process started
    (it runs in its own process group and would otherwise outlive us)."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)


def prepare_prefect(home: str | Path | None = None) -> Path:
    """Before anything imports prefect: its home and settings, SIGTERM unwinding (the CLI's main has quieted
    the chatty loggers). Returns PREFECT_HOME."""
    from flows.prefect_env import configure_prefect_env

    path = configure_prefect_env(home)
    unwind_on_sigterm()
    return path

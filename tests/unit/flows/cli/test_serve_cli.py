"""`panst3r serve`'s flags: warm workers and the served runner's poll interval."""

from __future__ import annotations

import argparse

import pytest

from flows.cli import serve


def _args(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    return parser.parse_args(list(flags))


def test_warm_workers_are_on_by_default_and_polls_are_frequent():
    args = _args()
    assert args.warm_workers is True and args.workers == 2
    assert args.poll_seconds == serve.DEFAULT_POLL_SECONDS < 10, "Prefect's own 10 s made triggered runs wait"
    assert _args("--no-warm-workers", "--poll-seconds", "0.5").warm_workers is False


@pytest.mark.parametrize(
    ("flags", "message"), [(("--poll-seconds", "0"), "--poll-seconds"), (("--workers", "0"), "--workers")]
)
def test_bad_values_name_their_flag(flags, message):
    with pytest.raises(ValueError, match=message):
        serve.run(_args(*flags))

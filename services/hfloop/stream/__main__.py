"""``python -m hfloop.stream [--topic-suffix S]``: the stream worker, on suffixed topics if asked.

``hfloop worker --role stream`` is the production entry; this one lets tests and chaos runs
point a real worker process at their own topics (settings come from ``HFLOOP_*``).
"""

from __future__ import annotations

import argparse

from hfloop.config import get_settings
from hfloop.stream.app import TopicNames, run_worker


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hfloop.stream", description=__doc__)
    parser.add_argument(
        "--topic-suffix", help="Read and write <contract topic>.<suffix> instead of the contract topics."
    )
    args = parser.parse_args(argv)
    run_worker(get_settings(), TopicNames.suffixed(args.topic_suffix) if args.topic_suffix else None)


if __name__ == "__main__":
    main()

"""`python -m goproc.daemon [--force] [--fresh] [--config PATH] [--http ADDR]`: the daemon
as its own program.

`goproc daemon` execs this, so the CLI never imports the daemon's code.
"""

from __future__ import annotations

import argparse
import sys

from goproc.config import check_http_exposure, load_config, with_http
from goproc.errors import ConfigError

FORCE_HELP = "stop a daemon already running on this state dir and take over"
FRESH_HELP = (
    "start empty when the state dir holds earlier state but no snapshot that loads "
    "(refused otherwise); the files are set aside, ids go on above the used ones"
)

HTTP_HELP = "serve the read-only HTTP listener on ADDR (overrides http_listen)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="goproc daemon")
    parser.add_argument("--force", "-f", action="store_true", help=FORCE_HELP)
    parser.add_argument("--fresh", action="store_true", help=FRESH_HELP)
    parser.add_argument("--config")
    parser.add_argument("--http", help=HTTP_HELP)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.http is not None:
            config = with_http(config, args.http)
        check_http_exposure(config)
    except ConfigError as e:
        print(f"goproc: {e}", file=sys.stderr)
        return 2
    from goproc.daemon.main import run_daemon

    return run_daemon(config, force=args.force, fresh=args.fresh)


if __name__ == "__main__":
    sys.exit(main())

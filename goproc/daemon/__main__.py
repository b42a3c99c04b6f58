"""`python -m goproc.daemon [--force] [--config PATH]`: the daemon as its own program.

`goproc daemon` execs this, so the CLI never imports the daemon's code.
"""

from __future__ import annotations

import argparse
import sys

from goproc.config import load_config
from goproc.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="goproc daemon")
    parser.add_argument("--force", "-f", action="store_true")
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"goproc: {e}", file=sys.stderr)
        return 2
    from goproc.daemon.main import run_daemon

    return run_daemon(config, force=args.force)


if __name__ == "__main__":
    sys.exit(main())

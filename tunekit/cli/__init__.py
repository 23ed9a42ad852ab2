"""The `tunekit` command: train, evaluate, predict, export, list backbones (and serve) without writing Python.

Every subcommand maps onto the Python API: `train` reads a YAML or JSON config whose sections hold the
arguments of `tunekit.load_backbone` (`backbone:`), `tunekit.attach_head` (`head:`) and `tunekit.Trainer`
(`trainer:`), plus the data (`data:`) and where to write (`output:`, `export:`); flags override it.

Exit codes: 0 success; 2 a usage or configuration error (bad flag, unknown config key, missing file, bad
value: the message goes to stderr, without a traceback, before any training starts); 1 a failure while
working (add `--traceback` to see where); 130 interrupted. Progress goes to stderr, results (JSON) to stdout.

The package, by job: `errors` (`UsageError`, exit codes), `settings` (the table of train settings),
`config` (config file + flags + `--set` -> checked settings), `data_sources` (data read with
`tunekit.datasets`' readers), `tasks` (what differs by task kind), `commands` (the subcommands) and `parser`.

Example:

>>> from tunekit.cli import main
>>> main(["list-backbones"])                                                   # doctest: +ELLIPSIS
albert_en_base
...
0
>>> main(["train", "--config", "missing.yaml"])  # stderr: config file 'missing.yaml' does not exist.
2
"""

import sys
import traceback

from tunekit.cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    UsageError,
)
from tunekit.cli.parser import build_parser

__all__ = ["UsageError", "build_parser", "main"]


def main(argv=None):
    """Runs the `tunekit` command with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        if args.traceback:
            traceback.print_exc()
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - the command's failure, reported without a traceback by default
        if args.traceback:
            traceback.print_exc()
        print(f"{PROG} {args.command}: error: {type(error).__name__}: {error}", file=sys.stderr)
        if not args.traceback:
            print(f"{PROG}: run again with --traceback to see where it failed", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())

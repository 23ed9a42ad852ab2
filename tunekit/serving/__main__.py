"""`python -m tunekit.serving EXPORT_DIR --name NAME --port PORT`: the same as `tunekit serve`."""

import argparse
import sys

from tunekit.serving.cli import add_arguments, main

parser = argparse.ArgumentParser(prog="python -m tunekit.serving",
                                 description="Serve exported tunekit models over HTTP.")
add_arguments(parser)
sys.exit(main(parser.parse_args()))

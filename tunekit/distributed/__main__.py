"""`python -m tunekit.distributed`: run an unchanged training script on several worker processes (like torchrun).

    python -m tunekit.distributed --workers 2 train.py --epochs 3     # 2 local workers, TF_CONFIG set for each
    python -m tunekit.distributed train.py --epochs 3                 # this machine's worker, TF_CONFIG from the scheduler

With `--workers N` the launcher picks N free localhost ports, starts N copies of itself with `TF_CONFIG` set for
each, and waits: when one worker fails, the others are stopped and its exit code is returned (so a scheduler sees
the failure); when all succeed it returns 0. Without `--workers` it is one worker: it creates the
`tf.distribute` strategy (`tunekit.distributed.strategy_from_environment`) before anything else runs, then runs
the script as `__main__` inside the strategy's scope, so the model and optimizer variables the script creates are
mirrored across workers and `tunekit.Trainer` trains with the cluster's global batch (`batch_size` of the script =
the global batch, split between the workers).
"""

import argparse
import json
import os
import runpy
import signal
import socket
import subprocess
import sys
import time

from tunekit.distributed import TF_CONFIG, read_tf_config, strategy_from_environment

STOP_GRACE_SECONDS = 10


def _free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("localhost", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _exit_code(returncode):
    return 128 - returncode if returncode < 0 else returncode


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch(workers, script, script_args):
    """Starts `workers` local worker processes running `script` and returns the exit code of the run."""
    ports = _free_ports(workers)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    try:
        for index in range(workers):
            environment = dict(os.environ)
            environment[TF_CONFIG] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "tunekit.distributed", script, *script_args], env=environment))
        while True:
            codes = [process.poll() for process in processes]
            failed = [code for code in codes if code not in (None, 0)]
            if failed:
                _stop(processes)
                return _exit_code(failed[0])
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop(processes)
        return 128 + signal.SIGINT
    finally:
        _stop(processes)


def run_worker(script, script_args):
    """Runs `script` as `__main__` in the scope of this process's strategy (the current process is one worker)."""
    strategy = strategy_from_environment()
    sys.argv = [script, *script_args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    with strategy.scope():
        runpy.run_path(script, run_name="__main__")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tunekit.distributed",
        description="Run a tunekit training script on several workers (TF_CONFIG, MultiWorkerMirroredStrategy).")
    parser.add_argument("--workers", type=int, default=None,
                        help="start this many local worker processes (without it: be one worker of TF_CONFIG)")
    parser.add_argument("script", help="the Python training script, unchanged")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="its arguments")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.script):
        parser.error(f"script {args.script!r} does not exist.")
    if args.workers is not None:
        if args.workers < 1:
            parser.error(f"--workers must be at least 1, got {args.workers}.")
        if read_tf_config() is not None:
            parser.error("--workers starts its own local cluster, but TF_CONFIG is already set: unset it, or drop "
                         "--workers to run as this machine's worker of that cluster.")
        return launch(args.workers, args.script, args.script_args)
    try:
        read_tf_config()
    except ValueError as error:
        parser.error(str(error))
    return run_worker(args.script, args.script_args)


if __name__ == "__main__":
    sys.exit(main())

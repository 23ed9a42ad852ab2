"""`python -m tunekit.distributed`: run an unchanged training script on several worker processes (like torchrun).

    python -m tunekit.distributed --workers 2 train.py --epochs 3     # 2 local workers, TF_CONFIG set for each
    python -m tunekit.distributed train.py --epochs 3                 # this machine's worker, TF_CONFIG from the scheduler

With `--workers N` the launcher picks N free localhost ports, starts N copies of itself with `TF_CONFIG` set for
each, and waits: when one worker fails, it says which one and how (its exit status or the signal that killed it),
stops the others and returns that worker's exit code (so a scheduler sees the failure); when all succeed it returns
0. SIGTERM or SIGINT to the launcher is passed on to the workers, which are waited for (killed after
`STOP_GRACE_SECONDS`), and the launcher exits with 128 + the signal's number (143 for SIGTERM). Without
`--workers` it is one worker: it creates the
`tf.distribute` strategy (`tunekit.distributed.strategy_from_environment`) before anything else runs, then runs
the script as `__main__` inside the strategy's scope, so the model and optimizer variables the script creates are
mirrored across workers and `tunekit.Trainer` trains with the cluster's global batch (`batch_size` of the script =
the global batch, split between the workers). A worker waits at most `TUNEKIT_CLUSTER_TIMEOUT` seconds (default
600) for the others to start (see `tunekit.distributed.wait_for_workers`; past it, it names them and exits with
status 3), exits at SIGTERM, and when TensorFlow's collectives fail because another worker stopped, names that
worker after the error (`lost_workers_message`) and exits with status 1.
"""

import argparse
import json
import os
import re
import runpy
import signal
import socket
import subprocess
import sys
import time
import traceback

from tunekit.distributed import TF_CONFIG, cluster_timeout, read_tf_config, strategy_from_environment

STOP_GRACE_SECONDS = 10
# Exit status of a worker whose cluster never formed (1 is any error of the script, 2 a bad command line or setting).
EXIT_CLUSTER_TIMEOUT = 3


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


class _Stopped(Exception):
    """The launcher received a stop signal (SIGTERM, SIGINT)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise _Stopped(signum)


def _exit_code(returncode):
    return 128 - returncode if returncode < 0 else returncode


def describe_exit(returncode):
    """How a process ended, from its `returncode`: "exited with status 1", "was killed by signal SIGKILL"."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"number {-returncode}"
        return f"was killed by signal {name}"
    return f"exited with status {returncode}"


def _say(message):
    print(f"tunekit.distributed: {message}", file=sys.stderr, flush=True)


def _stop(processes, signum=signal.SIGTERM):
    """Sends `signum` to the running workers, waits up to `STOP_GRACE_SECONDS` for them, then kills the rest."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signum)
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
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(workers):
            environment = dict(os.environ)
            environment[TF_CONFIG] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "tunekit.distributed", script, *script_args], env=environment))
        while True:
            codes = [process.poll() for process in processes]
            failed = [(index, code) for index, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                index, code = failed[0]
                running = [f"worker {i}" for i, other in enumerate(codes) if other is None]
                _say(f"worker {index} ({cluster['worker'][index]}) {describe_exit(code)}"
                     + (f"; stopping {', '.join(running)}." if running else "."))
                _stop(processes)
                return _exit_code(code)
            if all(code == 0 for code in codes):
                return 0
            time.sleep(0.2)
    except _Stopped as stopped:
        for signum, handler in previous.items():  # a second signal acts as it would without the launcher
            signal.signal(signum, handler)
        _say(f"received {stopped}: passing it on to the workers and waiting for them.")
        _stop(processes, stopped.signum)
        return 128 + stopped.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stop(processes)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def run_worker(script, script_args):
    """Runs `script` as `__main__` in the scope of this process's strategy (the current process is one worker).

    SIGTERM ends the worker (`SystemExit(143)`, so the script's `finally` blocks run): TensorFlow's coordination
    service otherwise catches it (as a preemption notice) and the worker keeps running."""
    try:
        strategy = strategy_from_environment()
    except TimeoutError as error:
        _say(str(error))
        return EXIT_CLUSTER_TIMEOUT
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.argv = [script, *script_args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    import tensorflow as tf

    try:
        with strategy.scope():
            runpy.run_path(script, run_name="__main__")
    except tf.errors.UnavailableError as error:  # the collectives lost another worker
        if read_tf_config() is None:
            raise
        traceback.print_exc()
        _say(lost_workers_message(error.message, json.loads(os.environ[TF_CONFIG])["cluster"], read_tf_config()["index"]))
        return 1
    return 0


def lost_workers_message(text, cluster, index):
    """What to tell the user when TensorFlow's collectives fail with `text` (an `UnavailableError` naming tasks
    such as `/job:worker/replica:0/task:1`): which other workers of `cluster` (TF_CONFIG's, its chief first) it
    names, by tunekit's index (`read_tf_config`) and address; `index` is this worker's.

    >>> lost_workers_message("aborted by: Error reported from /job:worker/task:1", {"worker": ["a:1", "b:2"]}, 0)
    'worker 0 lost worker 1 (b:2): it stopped or cannot be reached (its own log says why); rerun every worker (with backup_dir, training resumes from the last backup).'
    """
    members = [(job, task) for job in ("chief", "worker") for task in range(len(cluster.get(job, [])))]
    addresses = [*cluster.get("chief", []), *cluster.get("worker", [])]
    lost = []
    for job, task in re.findall(r"/job:(chief|worker)(?:/replica:\d+)?/task:(\d+)", text):
        if (job, int(task)) in members:
            other = members.index((job, int(task)))
            if other != index and other not in lost:
                lost.append(other)
    who = ", ".join(f"worker {other} ({addresses[other]})" for other in lost) or "another worker"
    return (f"worker {index} lost {who}: {'it' if len(lost) <= 1 else 'they'} stopped or cannot be reached (its own "
            "log says why); rerun every worker (with backup_dir, training resumes from the last backup).")


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
    try:
        cluster_timeout()
    except ValueError as error:
        parser.error(str(error))
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

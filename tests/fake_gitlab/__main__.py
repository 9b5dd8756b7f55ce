"""Command line: ``python3 -m fake_gitlab --port 0 --data DIR --ready-file FILE``.

Binds 127.0.0.1:PORT (0 = a free port), applies the seed (``--seed FILE``, a
JSON document; default: an admin ``root`` with the token ``root-token``), and
writes ``http://127.0.0.1:PORT`` into the ready file -- atomically, and only
once the socket is listening -- then serves until SIGTERM/SIGINT.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

from .server import FakeGitLab
from .state import SeedError, State


def watch_parent(pid, stop):
    """Shut down once ``pid`` is gone, so a killed test run leaves nothing behind.

    When ``pid`` is our parent, being re-parented is the signal (a killed parent
    may linger as a zombie, which still answers kill(pid, 0)).
    """
    direct = os.getppid() == pid
    while True:
        time.sleep(0.5)
        if direct:
            if os.getppid() != pid:
                break
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:
            pass
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":   # dead, not yet reaped
                    break
        except (OSError, IndexError):
            pass
    stop()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fake_gitlab", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--data", required=True, help="directory for the bare repositories (wiped on start)")
    ap.add_argument("--ready-file", help="file that receives the base URL once the server listens")
    ap.add_argument("--seed", help="JSON seed file (users, tokens, groups, projects, jobs, settings)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    ap.add_argument("--parent-pid", type=int, help="exit when this process is gone (test runners pass their pid)")
    args = ap.parse_args(argv)

    seed = None
    if args.seed:
        with open(args.seed) as f:
            seed = json.load(f)
    try:
        state = State(args.data, seed)
    except SeedError as e:
        print(f"fake GitLab: seed refused: {e}", file=sys.stderr, flush=True)
        return 2
    server = FakeGitLab((args.host, args.port), state, verbose=args.verbose)
    url = state.base_url

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.parent_pid:
        threading.Thread(target=watch_parent, args=(args.parent_pid, stop), daemon=True).start()
    if args.ready_file:  # the socket is bound and listening (listen() ran in the constructor)
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(url + "\n")
        os.replace(tmp, args.ready_file)
    print(f"fake GitLab listening on {url}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

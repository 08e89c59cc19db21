# -*- coding: utf-8 -*-
# Copyright: canarykeys.aws contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command-line loop shared by the local services (local AWS, alert sink)."""

from __future__ import annotations

import signal
import sys
import threading


def serve_until_signalled(service, banner) -> int:
    """Enter ``service``, print ``banner(service)`` on one line, serve until SIGTERM or SIGINT.

    Leaving the ``with`` block on a signal is what stops the service's own processes and threads,
    so a caller that kills this process with SIGTERM leaves nothing behind.
    """
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_args: stop.set())
    with service as running:
        sys.stdout.write(banner(running) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    return 0

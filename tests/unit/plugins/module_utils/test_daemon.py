"""The pid-file daemon: found again by PID file and command line, never mistaken for another process."""

from __future__ import annotations

import os
import socket

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import daemon
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

SLEEP = ["/bin/sleep", "300"]


@pytest.fixture
def pidfile(tmp_path):
    path = str(tmp_path / "d.pid")
    yield path
    pid = daemon.running_pid(path, SLEEP)[0]
    if pid:
        daemon.stop(path, pid)


def test_start_then_idempotent_then_stop(pidfile, tmp_path):
    assert daemon.plan("started", SLEEP, pidfile) == ("started", "not running")
    pid = daemon.start("sleeper", SLEEP, pidfile, log_path=str(tmp_path / "log"))
    assert daemon.running_pid(pidfile, SLEEP)[0] == pid
    assert daemon.plan("started", SLEEP, pidfile)[0] is None
    assert daemon.plan("started", ["/bin/sleep", "301"], pidfile) == ("restarted", "command line changed")
    assert daemon.plan("restarted", SLEEP, pidfile)[0] == "restarted"
    daemon.stop(pidfile, pid)
    assert not os.path.exists(pidfile)
    assert daemon.plan("stopped", SLEEP, pidfile) == (None, "not running")


def test_recycled_pid_is_not_taken_for_the_listener(pidfile):
    with open(pidfile, "w") as fh:
        fh.write("%d\n" % os.getpid())  # alive, but python, not sleep
    assert daemon.running_pid(pidfile, SLEEP) == (None, None)
    assert daemon.plan("started", SLEEP, pidfile)[0] == "started"


def test_stale_pidfile_means_not_running(pidfile):
    with open(pidfile, "w") as fh:
        fh.write("999999999\n")
    assert daemon.plan("stopped", SLEEP, pidfile) == (None, "not running")


def test_listener_that_exits_early_fails_with_its_output(pidfile, tmp_path):
    log = str(tmp_path / "log")
    with pytest.raises(DicomTlsError, match="exited with status 3 before opening port"):
        daemon.start("bad", ["/bin/sh", "-c", "echo no certificate; exit 3"], pidfile, log_path=log, port=1)
    assert not os.path.exists(pidfile)


def test_port_taken_by_another_process_is_refused(pidfile):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(DicomTlsError, match="already in use"):
            daemon.start("dup", SLEEP, pidfile, port=port)


def test_missing_executable_is_a_clear_error(pidfile):
    with pytest.raises(DicomTlsError, match="executable not found"):
        daemon.start("x", ["/nonexistent/storescp"], pidfile)

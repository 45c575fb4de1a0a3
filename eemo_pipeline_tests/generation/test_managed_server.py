"""``ManagedServer`` with real processes: a command that exits at once or finds its port taken fails with the end of
its log; the stop reaches the whole process group (SIGKILL after the grace for a server that ignores SIGTERM); a
server that keeps dying is restarted up to the limit; a server whose starting process is killed outright ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from eemo_pipeline.generation.managed_server import ManagedServer, ServerFailed, free_port
from eemo_pipeline_tests.generation.test_endpoint_faults import wait_for

REPO = Path(__file__).resolve().parents[2]
# A server that ignores SIGTERM, answers GET /v1/models with one model and leaves a child in its process group.
STUBBORN = textwrap.dedent("""
    import http.server, json, signal, subprocess, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "600"])
    print("child", child.pid, flush=True)
    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"object": "list", "data": [{"id": "stub-model"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Models).serve_forever()
""")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # a zombie is no running process either


@pytest.fixture
def stubborn(tmp_path: Path) -> str:
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    return f"{sys.executable} {script} {{port}}"


def child_pid(log: Path) -> int:
    wait_for(lambda: "child " in log.read_text(), "the server's child")
    return int(log.read_text().split("child ")[-1].split()[0])


def test_a_command_that_exits_at_once_fails_with_its_exit_code_and_log(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = ManagedServer("sh -c 'echo unknown flag --tensor-parallel; exit 3'", log, free_port(), start_timeout_s=60)
    started = time.monotonic()
    with pytest.raises(ServerFailed, match=r"exited with code 3 before it answered GET http://127\.0\.0\.1:\d+/v1/"
                                           r"models") as failed:
        server.start()
    assert time.monotonic() - started < 30  # not the whole start timeout
    assert str(failed.value).endswith("unknown flag --tensor-parallel") and str(log) in str(failed.value)


def test_a_port_in_use_fails_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ManagedServer("sleep 600", tmp_path / "server.log", port)
        with pytest.raises(ServerFailed, match=f"port {port} on 127.0.0.1 is in use already"):
            server.start()
    assert server.pids == []


def test_stop_kills_the_process_group_after_the_grace(stubborn: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = ManagedServer(stubborn, log, free_port(), start_timeout_s=60, stop_grace_s=1.0)
    server.start()
    assert server.models == ["stub-model"] and server.base_url == f"http://127.0.0.1:{server.port}/v1"
    leader, child = server.pid, child_pid(log)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started >= 1.0  # SIGTERM was ignored: SIGKILL after the grace
    assert gone(leader) and gone(child)  # the child in its group too


def test_a_server_that_keeps_dying_is_restarted_up_to_the_limit(stubborn: str, tmp_path: Path) -> None:
    events: list[str] = []
    server = ManagedServer(stubborn, tmp_path / "server.log", free_port(), start_timeout_s=60, max_restarts=1,
                           stop_grace_s=1.0, on_event=events.append)
    with server:
        first = server.pid
        os.killpg(first, signal.SIGKILL)
        wait_for(lambda: server.pid not in (None, first) and any("is back" in event for event in events),
                 "the restarted server")
        second = server.pid
        os.killpg(second, signal.SIGKILL)
        wait_for(lambda: any("not restarted" in event for event in events), "the watcher giving up")
        assert server.pid is None and server.restarts == 1 and server.pids == [first, second]
    assert events[0] == (f"the model server (pid {first}) exited with code -9; restarting it on port {server.port} "
                         "(1 of max_restarts 1)")
    assert f"(pid {second}) exited with code -9; not restarted: max_restarts 1 reached" in events[-1]


def test_the_server_ends_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    starter = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from eemo_pipeline.generation.managed_server import ManagedServer, free_port
        command = f"{{sys.executable}} -m eemo_pipeline.generation.offline_server --port {{{{port}}}}"
        server = ManagedServer(command, Path({str(log)!r}), free_port(), start_timeout_s=120)
        server.start()
        print(server.pid, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        pid = int(starter.stdout.readline())
        assert not gone(pid)
        starter.kill()  # SIGKILL: no teardown runs
        starter.wait()
        wait_for(lambda: gone(pid), "the server ending with its starter")
    finally:
        starter.kill()
        starter.stdout.close()

"""Attach through the system ssh to a real sshd on loopback that the test starts."""

import getpass
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from workbench.follow import Follower, remote_request

from .sessions_fixture import events
from .waiting import wait_for

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not Path(SSHD).exists(), reason="sshd is not installed (CI installs openssh-server)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    d = tmp_path / "ssh"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "user")], check=True)
    (d / "authorized_keys").write_text((d / "user.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PasswordAuthentication no\nPubkeyAuthentication yes\nStrictModes no\nUsePAM no\nPermitRootLogin yes\nPidFile {d / 'pid'}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    options = ["-p", str(port), "-i", str(d / "user"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    deadline = time.time() + 10
    while time.time() < deadline:
        ok = subprocess.run(["ssh", "-o", "BatchMode=yes", *options, "127.0.0.1", "true"], capture_output=True)
        if ok.returncode == 0:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.skip("sshd did not start here")
    yield f"{getpass.getuser()}@127.0.0.1", options
    proc.terminate()
    proc.wait(timeout=10)


def test_attach_over_ssh_survives_a_dropped_connection(sshd, tmp_path):
    host, options = sshd
    folder = tmp_path / "remote-run"
    folder.mkdir()
    evs = events("remote", n_steps=60)
    path = folder / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in evs[:20]) + json.dumps(evs[20])[:15])  # ends in a torn line
    got, statuses = [], []
    f = Follower(f"{host}:{folder}", got.extend, statuses.append, interval=0.05, ssh_options=options).start()
    wait_for(lambda: len(got) >= 20, "the first 20 events over ssh", timeout=15)
    assert len(got) == 20
    # drop the connection: kill the ssh client under the follower
    f._proc.kill()
    with open(path, "a") as out:
        out.write(json.dumps(evs[20])[15:] + "\n")
        out.write("".join(json.dumps(e) + "\n" for e in evs[21:]))
    wait_for(lambda: len(got) >= len(evs), "every event after the reconnection", timeout=20)
    f.stop()
    assert got == evs  # nothing lost, nothing twice
    assert any("connection lost" in s for s in statuses)
    remote_request(f"{host}:{folder}", "stop", ssh_options=options)
    assert (folder / "stop").exists()


async def test_workbench_attach_host_dir(sshd, tmp_path):
    from workbench.app import attach_app

    host, options = sshd
    folder = tmp_path / "r2"
    folder.mkdir()
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events("r2", finished=False)))
    app = attach_app(f"{host}:{folder}", ssh_options=options)
    async with app.run_test(size=(160, 45)) as pilot:
        for _ in range(50):
            await pilot.pause(0.2)
            if len(app.screen.state.samples) == 5:
                break
        assert app.screen.state.status == "running" and len(app.screen.state.samples) == 5
        await pilot.press("s", "tab", "enter")  # stop, and the dialog's Stop button
        await pilot.pause(0.5)
        for _ in range(20):
            if (folder / "stop").exists():
                break
            await pilot.pause(0.2)
        assert (folder / "stop").exists()


def test_attach_to_a_folder_that_is_not_there_says_so_and_exits(sshd, tmp_path):
    import sys

    host, options = sshd
    each = [f"--ssh-option={o}" for o in options]  # one ssh argument each, passed whole
    for target in (str(tmp_path / "gone"), f"{host}:{tmp_path / 'gone'}"):
        out = subprocess.run([sys.executable, "-m", "workbench.cli", "attach", target, *each],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert out.returncode == 2 and "no such session folder" in out.stderr, (target, out.stderr)


def test_attach_to_a_host_without_a_folder_refuses_at_once(sshd):
    import sys

    host, options = sshd
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "attach", f"{host}:", *[f"--ssh-option={o}" for o in options]],
                         capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "HOST:DIR" in out.stderr, out.stderr


def test_an_ssh_option_with_spaces_reaches_ssh_as_one_argument(tmp_path):
    """A fake ssh records its argv: `-oProxyCommand=a b` must arrive whole, not split at the space."""
    import os
    import sys

    fake = tmp_path / "ssh"
    log = tmp_path / "argv"
    fake.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> {log}; done\nexit 1\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "workbench.cli", "attach", "somehost:/x", "--ssh-option=-oProxyCommand=nc a b"],
                   capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)
    assert "-oProxyCommand=nc a b" in log.read_text().splitlines()

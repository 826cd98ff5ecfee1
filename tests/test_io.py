"""Atomic writes and the temporaries a killed process leaves beside a file."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

from vschaos.io import atomic_write_text, machine_tag, remove_stale_temporaries, temporary_prefix

WRITER = """
import sys, time
from vschaos.io import atomic_write
def write(tmp):
    open(tmp, "w").write("half")
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], write)
"""


def test_a_write_killed_by_sigkill_leaves_a_temporary_the_next_cleanup_removes(tmp_path, ended_pid):
    target = tmp_path / "model.ts"
    atomic_write_text(target, "old")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    left = [p for p in tmp_path.iterdir() if p.name != "model.ts"]
    assert [p.name.startswith(temporary_prefix(target, writer.pid)) for p in left] == [True]
    assert target.read_text() == "old"  # the kill lost nothing

    running = tempfile.mkdtemp(prefix=temporary_prefix(target), dir=tmp_path)  # this process: still writing
    other_file = tmp_path / (temporary_prefix(tmp_path / "other.ts", ended_pid) + "x1x2x3x4")
    other_file.write_text("not model.ts's")
    unknown = tmp_path / ".model.ts.abc123"  # an older version's name: no process to ask, left alone
    unknown.mkdir()

    assert remove_stale_temporaries(target) == left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.ts", os.path.basename(running), other_file.name, unknown.name])
    assert remove_stale_temporaries(target) == []


def test_a_stale_temporary_folder_is_removed_with_its_contents(tmp_path, ended_pid):
    target = tmp_path / "live.nm"
    stale = tmp_path / (temporary_prefix(target, ended_pid) + "q1w2e3r4")
    (stale / "inner").mkdir(parents=True)
    (stale / "inner" / "model.nm").write_bytes(b"\0" * 16)
    assert remove_stale_temporaries(target) == [stale]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["a.b.nm", "x y.ts", "[weird]*.nm"])
def test_temporary_prefix_is_the_file_name_then_this_machine_and_process(name, tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "studio.local/mac")  # dots and a slash are replaced
    tag = temporary_prefix(tmp_path / name, 12)[len(name) + 2:-len("-12.")]
    assert re.fullmatch(r"studio_local_mac_[0-9a-f]{6}", tag)
    assert temporary_prefix(tmp_path / name) == f".{name}.{tag}-{os.getpid()}."


def test_machine_tags_differ_for_look_alike_hosts_and_for_process_namespaces():
    assert machine_tag("node1.lab").startswith("node1_lab_") and machine_tag("node1_lab").startswith("node1_lab_")
    assert machine_tag("node1.lab") != machine_tag("node1_lab")  # equal once cleaned, not equal
    assert machine_tag("vm", "4026531836") != machine_tag("vm", "4026532001")  # a container sharing the host name
    assert machine_tag("vm", "4026531836") == machine_tag("vm", "4026531836")


def test_hand_made_or_unremovable_temporaries_never_stop_a_write(tmp_path, ended_pid, monkeypatch):
    target = tmp_path / "model.ts"
    host_part = temporary_prefix(target, 1).rsplit("-", 1)[0]  # ".model.ts.<machine>"
    odd = [tmp_path / f"{host_part}-{pid}.abcdefgh" for pid in
           ("99999999999999999999999", "0", "-5", "", "\u00b2", "\u0661\u0662\u0663\u0664\u0665")]  # ², Arabic-Indic
    odd.append(tmp_path / f"{host_part}-{ended_pid}.abc")  # not tempfile's 8 random characters
    # the live temporary of another file, "model.ts.<machine>-<ended pid>", written by this process:
    odd.append(tmp_path / (temporary_prefix(tmp_path / f"{target.name}.{host_part[len('.model.ts.'):]}-{ended_pid}")
                           + "abcdefgh"))
    assert odd[-1].name.startswith(temporary_prefix(target, ended_pid))  # it reads like a stale one of model.ts
    for path in odd:
        path.write_text("left alone")
    stuck = tmp_path / (temporary_prefix(target, ended_pid) + "stuck_01")
    stuck.write_text("cannot be removed")
    real_unlink = type(stuck).unlink

    def unlink(self, missing_ok=False):
        if self == stuck:
            raise PermissionError(13, "Permission denied", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(type(stuck), "unlink", unlink)
    assert remove_stale_temporaries(target) == []
    atomic_write_text(target, "new")  # the write goes on
    assert target.read_text() == "new" and all(path.exists() for path in odd + [stuck])

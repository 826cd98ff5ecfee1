"""Atomic writes, the temporaries a killed process leaves beside a file, a full disk and a read-only folder."""
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import pytest

from vschaos import io as io_module
from vschaos.io import (DiskFullError, atomic_jit_save, atomic_torch_save, atomic_write, atomic_write_text,
                        format_bytes, machine_tag, remove_stale_temporaries, temporary_prefix)

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


# ----------------------------------------------------------------------------- a full disk, a read-only folder

def _full_disk_on(target_suffix: str):
    """A stand-in for :func:`vschaos.io.write_bytes` that fails as a full disk does (ENOSPC, no file name, after
    writing part of the data) for temporaries of files ending in ``target_suffix``, and writes the others."""
    real = io_module.write_bytes

    def write_bytes(path, data):
        if not str(path).endswith(".tmp") or target_suffix not in os.path.basename(path):
            return real(path, data)
        with open(path, "wb") as handle:
            handle.write(bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    return write_bytes


@pytest.mark.parametrize("save", ["text", "torch", "jit"])
def test_a_full_disk_is_one_disk_full_error_naming_the_file_and_the_space_left(save, tmp_path, monkeypatch):
    import torch

    target = tmp_path / f"file.{save}"
    atomic_write_text(target, "previous")
    monkeypatch.setattr(io_module, "write_bytes", _full_disk_on(f"file.{save}"))
    monkeypatch.setattr(io_module.shutil, "disk_usage", lambda folder: SimpleNamespace(free=1234567, total=0, used=0))
    with pytest.raises(DiskFullError) as caught:
        if save == "text":
            atomic_write_text(target, "new")
        elif save == "torch":
            atomic_torch_save({"w": torch.ones(3)}, target)
        else:
            atomic_jit_save(torch.jit.script(torch.nn.Linear(2, 2)), target)
    error = caught.value
    assert error.errno == errno.ENOSPC and error.filename == str(target) and error.free_bytes == 1234567
    assert str(error) == (f"disk full: cannot write {target} (No space left on device; 1.2 MB free on its disk); "
                          f"the previous file, if any, is intact")
    assert isinstance(error, OSError) and "\n" not in str(error)
    assert target.read_text() == "previous" and os.listdir(tmp_path) == ["file." + save]  # no temporary left


def test_atomic_jit_save_writes_what_torch_jit_load_reads_and_verify_can_refuse(tmp_path):
    import torch

    module = torch.jit.script(torch.nn.Linear(3, 2))
    target = tmp_path / "model.ts"
    seen = []
    atomic_jit_save(module, target, verify=lambda tmp: seen.append(torch.jit.load(tmp)(torch.ones(1, 3))))
    assert torch.equal(torch.jit.load(str(target))(torch.ones(1, 3)), module(torch.ones(1, 3)))
    assert torch.equal(seen[0], module(torch.ones(1, 3)))  # verify ran on the written temporary
    before = target.read_bytes()

    def refuse(tmp):
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        atomic_jit_save(torch.jit.script(torch.nn.Linear(3, 4)), target, verify=refuse)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["model.ts"]


def test_atomic_torch_save_round_trips(tmp_path):
    import torch

    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 7}
    atomic_torch_save(state, tmp_path / "x.ckpt")
    loaded = torch.load(tmp_path / "x.ckpt", weights_only=True)
    assert loaded["step"] == 7 and torch.equal(loaded["w"], state["w"])


def test_an_unwritable_folder_names_the_file_not_its_temporary(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):  # mkstemp names the temporary it could not create
        raise OSError(errno.EROFS, "Read-only file system",
                      str(tmp_path / (temporary_prefix(tmp_path / "config.yaml") + "abcdefgh.tmp")))

    monkeypatch.setattr(io_module.tempfile, "mkstemp", read_only)
    with pytest.raises(OSError) as caught:
        atomic_write_text(tmp_path / "config.yaml", "a: 1")
    assert caught.value.errno == errno.EROFS and caught.value.filename == str(tmp_path / "config.yaml")
    assert str(caught.value) == f"[Errno 30] Read-only file system: '{tmp_path / 'config.yaml'}'"


def test_an_error_about_another_file_keeps_its_own_name(tmp_path):
    def write(tmp):
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/else")

    with pytest.raises(PermissionError) as caught:
        atomic_write(tmp_path / "x", write)
    assert caught.value.filename == "/somewhere/else" and os.listdir(tmp_path) == []


@pytest.mark.parametrize("count, text", [(None, "an unknown amount"), (0, "0 bytes"), (999, "999 bytes"),
                                         (1000, "1.0 kB"), (2_500_000, "2.5 MB"), (3 * 10 ** 9, "3.0 GB"),
                                         (5 * 10 ** 15, "5000.0 TB")])
def test_format_bytes(count, text):
    assert format_bytes(count) == text


def test_a_legal_255_byte_name_is_written_and_its_stale_temporary_removed(tmp_path, ended_pid):
    """The temporary's name adds its machine, pid and random part: cut, so a legal name never fails for it."""
    from vschaos.io import NAME_MAX_BYTES, atomic_write_text, remove_stale_temporaries, temporary_prefix

    name = "é" * 100 + "x" * (NAME_MAX_BYTES - 200 - 4) + ".wav"  # 255 bytes in UTF-8, 155 characters
    assert len(os.fsencode(name)) == NAME_MAX_BYTES
    assert atomic_write_text(tmp_path / name, "data").read_text() == "data"
    stale = tmp_path / (temporary_prefix(tmp_path / name, pid=ended_pid) + "abcd1234.tmp")
    assert len(os.fsencode(stale.name)) <= NAME_MAX_BYTES
    stale.write_text("left by a killed writer")
    assert remove_stale_temporaries(tmp_path / name) == [stale] and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]

"""Training under hostile conditions (issue 27): one training per version folder at a time, a full disk, a
read-only run folder, Ctrl-C. Each is one line, a non-zero exit, and nothing partial left in the run.

One short demo run is trained once per module and copied into each test that writes to it.
"""
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import sigint_as_at_a_terminal
from vschaos import io as io_module
from vschaos.cli.train import main
from vschaos.io import this_machine
from vschaos.training import checkpoints as checkpoints_module
from vschaos.training import lock as lock_module
from vschaos.training.lock import LOCK_NAME, RunLockedError, TrainingLock, read_holder
from vschaos.training.resume import checkpoint_problem, plan_resume, refresh_plan
from vschaos.training.run import CONFIG_NAME

REPO = Path(__file__).resolve().parents[1]
FAST = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "data.batch_size=32",
        "callbacks.progress=null", "callbacks.reconstructions=null", "trainer.log_every_n_steps=1",
        "trainer.enable_model_summary=false", "trainer.enable_progress_bar=false", "threads=1"]
HOLDER = """
import sys
from vschaos.training.lock import TrainingLock
lock = TrainingLock(sys.argv[1]).acquire()
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
lock.release()
"""


@pytest.fixture(scope="module")
def trained_run(demo_root, tmp_path_factory) -> Path:
    """``version_0`` of a 2-epoch demo run (2 steps per epoch)."""
    rundir = tmp_path_factory.mktemp("hostile")
    assert main(["--config-name", "demo", "name=run", f"rundir={rundir}", f"data.dataset.root={demo_root}",
                 "trainer.max_epochs=2", *FAST]) == 0
    return rundir / "run" / "version_0"


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    target = tmp_path / "runs" / "run" / "version_0"
    shutil.copytree(trained_run, target)
    return target


def _snapshot(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("train_model.py:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _hidden_files(folder: Path):
    """Temporaries and lock files: what a clean stop leaves nowhere in a run."""
    return [p for p in folder.rglob(".*")]


# ----------------------------------------------------------------------------- one training per version folder

@contextlib.contextmanager
def _holder(version_dir: Path) -> Iterator[subprocess.Popen]:
    """Another process holding ``version_dir``'s lock until the block ends."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(version_dir)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.stdin.close()
        process.wait(timeout=60)


def test_a_resume_of_a_run_another_process_trains_is_refused_naming_it(run_copy, capsys):
    with _holder(run_copy) as holder:
        before = _snapshot(run_copy.parent)
        assert main(["resume", str(run_copy.parent), "trainer.max_epochs=4"]) == 1
        line = _one_line(capsys.readouterr().err)
        assert line.startswith(f"train_model.py: RunLockedError: {run_copy} is being trained by pid {holder.pid} "
                               f"on {socket.gethostname()} (machine {this_machine()}) since 20")
        assert line.endswith("two trainings may not write into one version folder; wait for it to end, or stop it "
                             "(nothing was written)")
        assert _snapshot(run_copy.parent) == before  # no resume record, config, events file or checkpoint
    assert not (run_copy / LOCK_NAME).exists()  # the holder released it: the run is free again
    TrainingLock(run_copy).acquire().release()


def test_a_new_run_holds_its_version_folder_against_a_resume(demo_root, tmp_path, monkeypatch, capsys):
    """While a new run trains, a resume of its version folder (here started from inside its first checkpoint
    write: the same moment from another terminal) is refused and changes nothing."""
    original = checkpoints_module.LastCheckpoint._save
    attempts = []

    def save_then_resume(self, trainer, pl_module):
        original(self, trainer, pl_module)
        if not attempts:
            version_dir = Path(self.dirpath).parent
            before = _snapshot(version_dir)
            attempts.append((main(["resume", str(version_dir)]), capsys.readouterr().err))
            attempts.append(_snapshot(version_dir) == before)

    monkeypatch.setattr(checkpoints_module.LastCheckpoint, "_save", save_then_resume)
    assert main(["--config-name", "demo", f"rundir={tmp_path}", f"data.dataset.root={demo_root}",
                 "trainer.max_epochs=2", *FAST]) == 0
    (status, err), unchanged = attempts
    assert status == 1 and f"is being trained by pid {os.getpid()} on " in _one_line(err) and unchanged
    version_dir = tmp_path / "demo" / "version_0"
    assert _step(version_dir / "checkpoints" / "last.ckpt") == 4 and not (version_dir / LOCK_NAME).exists()


@pytest.mark.slow
def test_two_resumes_launched_together_train_once(run_copy):
    """The issue's case: both exited 0 and left best.ckpt from one, last.ckpt from the other, config.yaml from a
    third state. Now exactly one trains; the other is refused and writes nothing. The second starts once the first
    holds the lock, with epochs enough left to still hold it then (two launches a moment apart could otherwise
    run one after the other, which is allowed: the second would find nothing left to train)."""
    epochs = 400
    command = [sys.executable, "train_model.py", "resume", str(run_copy.parent), f"trainer.max_epochs={epochs}",
               "threads=1"]
    processes = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    deadline = time.monotonic() + 120
    while not (run_copy / LOCK_NAME).exists() and processes[0].poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    processes.append(subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [(process.wait(timeout=600), process.communicate()[1]) for process in processes]
    assert sorted(status for status, _ in results) == [0, 1], results
    refused = next(err for status, err in results if status == 1)
    winner = next(process.pid for process, (status, _) in zip(processes, results) if status == 0)
    assert f"RunLockedError: {run_copy} is being trained by pid {winner} on " in _one_line(refused)
    assert sorted(p.name for p in (run_copy / "resumes").iterdir()) == ["1"]  # one resume recorded
    assert _step(run_copy / "checkpoints" / "last.ckpt") == 2 * epochs and _hidden_files(run_copy) == []


def test_a_resume_checked_before_another_training_ended_is_checked_again(run_copy):
    """Between a resume's checks and its lock another training of the run may end (and rewrite config.yaml):
    the resume continues from that training's options, not from the config it read before."""
    plan = plan_resume(str(run_copy), "last", ["trainer.max_epochs=9"])
    assert refresh_plan(plan) is plan  # nothing changed: no second check
    saved = OmegaConf.load(run_copy / CONFIG_NAME)
    saved.module.optimizer.lr = 0.5  # what the other training's resume wrote
    (run_copy / CONFIG_NAME).write_text(OmegaConf.to_yaml(saved))
    fresh = refresh_plan(plan)
    assert fresh.saved_cfg.module.optimizer.lr == 0.5 and fresh.cfg.module.optimizer.lr == 0.5
    assert fresh.cfg.trainer.max_epochs == 9 and fresh.overrides == ["trainer.max_epochs=9"]


def test_a_training_that_fails_releases_its_lock(run_copy, monkeypatch):
    def fail(self, trainer, pl_module):
        assert (run_copy / LOCK_NAME).exists()  # held while it trains
        raise RuntimeError("a bug in a callback")

    monkeypatch.setattr(checkpoints_module.LastCheckpoint, "_save", fail)
    with pytest.raises(RuntimeError, match="a bug in a callback"):
        main(["resume", str(run_copy.parent), "trainer.max_epochs=4"])
    assert not (run_copy / LOCK_NAME).exists()


def _write_record(version_dir: Path, pid: int, machine: str) -> None:
    (version_dir / LOCK_NAME).write_text(json.dumps({"pid": pid, "machine": machine, "host": "old-host",
                                                     "since": "2026-01-02T03:04:05+00:00"}))


def test_the_lock_of_a_training_that_crashed_is_taken_over(run_copy, ended_pid):
    _write_record(run_copy, ended_pid, this_machine())  # what kill -9 or a power loss leaves
    assert main(["resume", str(run_copy.parent), "trainer.max_epochs=3"]) == 0
    assert _step(run_copy / "checkpoints" / "last.ckpt") == 6 and not (run_copy / LOCK_NAME).exists()


def test_the_lock_of_a_holder_killed_by_sigkill_is_taken_over(tmp_path):
    with _holder(tmp_path) as holder:
        holder.kill()  # no finally, no release: only the kernel's end of the process
        holder.wait()
        assert read_holder(tmp_path / LOCK_NAME).pid == holder.pid  # its record is left behind
        with TrainingLock(tmp_path):
            assert read_holder(tmp_path / LOCK_NAME).pid == os.getpid()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flock_works", [True, False])
def test_a_stale_lock_is_told_from_a_live_one(tmp_path, ended_pid, monkeypatch, flock_works):
    """With flock the kernel tells (a record whose process holds no flock is stale); without it (a file system
    that has none) the record's pid does, as for the export's temporaries."""
    if not flock_works:
        monkeypatch.setattr(lock_module, "_try_flock", lambda fd: None)
    _write_record(tmp_path, ended_pid, this_machine())
    with TrainingLock(tmp_path):
        assert read_holder(tmp_path / LOCK_NAME).pid == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        _write_record(tmp_path, live.pid, this_machine())
        if flock_works:  # a live process that holds no flock on it is not a training of this run
            TrainingLock(tmp_path).acquire().release()
        else:
            with pytest.raises(RunLockedError, match=f"being trained by pid {live.pid} on old-host "):
                TrainingLock(tmp_path).acquire()
            assert read_holder(tmp_path / LOCK_NAME).pid == live.pid  # refused: left as it was
    finally:
        live.stdin.close()
        live.wait()


def test_a_lock_from_another_machine_is_refused_saying_how_to_clear_it(tmp_path):
    _write_record(tmp_path, 12345, "elsewhere_abc123")
    before = (tmp_path / LOCK_NAME).read_bytes()
    with pytest.raises(RunLockedError) as caught:
        TrainingLock(tmp_path).acquire()
    assert str(caught.value) == (
        f"{tmp_path} is being trained by pid 12345 on old-host (machine elsewhere_abc123) since "
        f"2026-01-02T03:04:05+00:00: two trainings may not write into one version folder; if no training of this "
        f"run runs on old-host any more, delete {tmp_path / LOCK_NAME} (nothing was written)")
    assert (tmp_path / LOCK_NAME).read_bytes() == before


def test_a_record_cannot_break_the_one_line(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "machine": "far\nFAKE", "host": "h\x1b[2J" + "x" * 500,
                                                  "since": "now"}))
    with pytest.raises(RunLockedError) as caught:
        TrainingLock(tmp_path).acquire()
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)
    assert "pid 1 on h?[2J" + "x" * 95 + " (machine far?FAKE) since now" in str(caught.value)


def test_a_hostile_lock_file_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).symlink_to(victim)
    with pytest.raises(RunLockedError, match="is a symbolic link, not a lock file written by train_model.py"):
        TrainingLock(folder).acquire()
    (folder / LOCK_NAME).unlink()
    os.link(victim, folder / LOCK_NAME)
    with pytest.raises(RunLockedError, match="is a hard link to another file"):
        TrainingLock(folder).acquire()
    assert victim.read_text() == "precious"


def test_a_torn_or_garbage_record_is_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_bytes(b'{"pid": 12')  # a writer killed mid-record
    with TrainingLock(tmp_path):
        assert read_holder(tmp_path / LOCK_NAME).pid == os.getpid()
    (tmp_path / LOCK_NAME).write_bytes(b"\xff" * 100_000)
    with TrainingLock(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_taking_the_lock_is_one_line_and_leaves_no_lock(run_copy, monkeypatch, capsys):
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lock_module, "_write_record", full)
    monkeypatch.setattr(lock_module, "free_bytes", lambda path: 0)
    before = _snapshot(run_copy)
    assert main(["resume", str(run_copy.parent)]) == 1
    assert _one_line(capsys.readouterr().err) == (
        f"train_model.py: TrainingError: disk full: cannot write {run_copy / LOCK_NAME} (No space left on device; "
        f"0 bytes free there): free some space and try again (nothing was written)")
    assert _snapshot(run_copy) == before


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_the_lock_is_released_on_any_exit(tmp_path, stop):
    with pytest.raises(stop):
        with TrainingLock(tmp_path):
            with pytest.raises(RunLockedError):  # held, also against this process's own second attempt
                TrainingLock(tmp_path).acquire()
            raise stop()
    assert list(tmp_path.iterdir()) == []
    TrainingLock(tmp_path).acquire().release()


def test_ctrl_c_during_training_releases_the_lock_and_keeps_last_checkpoint(run_copy, monkeypatch, capsys):
    original = checkpoints_module.LastCheckpoint._save
    saved = []

    def save_then_ctrl_c(self, trainer, pl_module):
        original(self, trainer, pl_module)
        saved.append(self.path.read_bytes())
        raise KeyboardInterrupt  # as Ctrl-C right after a checkpoint

    monkeypatch.setattr(checkpoints_module.LastCheckpoint, "_save", save_then_ctrl_c)
    handler = signal.getsignal(signal.SIGINT)
    assert main(["resume", str(run_copy.parent), "trainer.max_epochs=4"]) == 130
    line = _one_line(capsys.readouterr().err)
    assert line == (f"train_model.py: interrupted (Ctrl-C); the checkpoints already in {run_copy / 'checkpoints'} "
                    f"(best.ckpt, last.ckpt) are intact (written atomically): train_model.py resume {run_copy}")
    last = run_copy / "checkpoints" / "last.ckpt"
    assert last.read_bytes() == saved[0] and _step(last) == 6 and checkpoint_problem(last) is None
    assert _hidden_files(run_copy) == []  # no lock, no temporary
    assert signal.getsignal(signal.SIGINT) is handler  # Lightning leaves SIGINT ignored; fit restores it


@pytest.mark.slow
def test_a_real_sigint_stops_a_training_cleanly(run_copy):
    last = run_copy / "checkpoints" / "last.ckpt"
    started = last.stat().st_mtime_ns
    process = subprocess.Popen([sys.executable, "train_model.py", "resume", str(run_copy.parent),
                                "trainer.max_epochs=100000", "callbacks.last.every_n_train_steps=1"],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=sigint_as_at_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while last.stat().st_mtime_ns == started and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)  # until it has written a checkpoint of its own
        assert (run_copy / LOCK_NAME).exists()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "train_model.py: interrupted (Ctrl-C); the checkpoints already in" in _one_line(err)
    assert checkpoint_problem(last) is None and _step(last) > 4 and _hidden_files(run_copy) == []


# ----------------------------------------------------------------------------- a full disk

def _full_disk_for(name: str):
    """:func:`vschaos.io.write_bytes` failing as a full disk (ENOSPC after part of the data) for the temporaries
    of ``name``, writing the rest."""
    real = io_module.write_bytes

    def write_bytes(path, data):
        if not os.path.basename(str(path)).startswith(f".{name}."):
            return real(path, data)
        with open(path, "wb") as handle:
            handle.write(bytes(data)[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    return write_bytes


def test_a_full_disk_while_training_is_one_line_and_keeps_the_last_checkpoint(run_copy, monkeypatch, capsys):
    last = run_copy / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    monkeypatch.setattr(io_module, "write_bytes", _full_disk_for("last.ckpt"))
    monkeypatch.setattr(io_module, "free_bytes", lambda path: 2_400_000)
    assert main(["resume", str(run_copy.parent), "trainer.max_epochs=4"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == (f"train_model.py: TrainingError: disk full while writing {last} (No space left on device; "
                    f"2.4 MB free there); the checkpoints already in {run_copy / 'checkpoints'} (best.ckpt, "
                    f"last.ckpt) are intact (written atomically): free some space, then train_model.py resume "
                    f"{run_copy}")
    assert last.read_bytes() == before and _hidden_files(run_copy) == []


def test_a_full_disk_before_the_first_checkpoint_says_there_is_nothing_to_resume(demo_root, tmp_path, monkeypatch,
                                                                               capsys):
    monkeypatch.setattr(io_module, "write_bytes", _full_disk_for("config.yaml"))
    assert main(["--config-name", "demo", f"rundir={tmp_path}", f"data.dataset.root={demo_root}", *FAST]) == 1
    version_dir = tmp_path / "demo" / "version_0"
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"train_model.py: TrainingError: disk full while writing {version_dir / 'config.yaml'} "
                           f"(No space left on device; ")
    assert line.endswith(f"free there); no checkpoint was written yet in {version_dir}: free some space, then "
                         f"train again")
    assert list(version_dir.iterdir()) == []


@contextlib.contextmanager
def _tmpfs(folder: Path, size: int) -> Iterator[Path]:
    """A real tmpfs of ``size`` bytes mounted on ``folder`` (skips where mounting is not permitted)."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:  # lazily if busy (a file a failed training left open): never leave a mount behind in /tmp
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_really_full_disk_while_training_is_one_line(run_copy, tmp_path, capsys):
    used = sum(p.stat().st_size for p in run_copy.rglob("*") if p.is_file())
    with _tmpfs(tmp_path / "small", used + 1_000_000) as small:  # room for the copy, not for a checkpoint more
        version_dir = small / "run" / "version_0"
        shutil.copytree(run_copy, version_dir)
        before = _snapshot(version_dir / "checkpoints")
        assert main(["resume", str(version_dir), "trainer.max_epochs=4"]) == 1
        line = _one_line(capsys.readouterr().err)
        assert line.startswith(f"train_model.py: TrainingError: disk full while writing {version_dir}")
        assert "(No space left on device; " in line and " free there); the checkpoints already in " in line
        assert _snapshot(version_dir / "checkpoints") == before and _hidden_files(version_dir) == []


def test_a_really_full_disk_under_an_export_is_one_line_and_keeps_the_previous_file(run_copy, tmp_path):
    """In a child process: before the fix, torch.jit.save's C++ writer aborted it (exit 134)."""
    with _tmpfs(tmp_path / "small", 200_000) as small:  # smaller than the demo model's file
        previous = small / "model.ts"
        previous.write_bytes(b"an earlier export")
        done = subprocess.run([sys.executable, "script.py", str(run_copy), "-o", str(previous)], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        err = done.stderr.strip()
        assert done.returncode == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("script.py: ") and str(previous) in err and "No space left on device" in err
        assert previous.read_bytes() == b"an earlier export" and os.listdir(small) == ["model.ts"]


def test_torch_and_jit_saves_on_a_really_full_disk_raise_disk_full_error(tmp_path):
    """In a child process: before the fix, torch.jit.save's C++ writer aborted the process (exit 134)."""
    with _tmpfs(tmp_path / "small", 100_000) as small:
        code = ("import sys, torch\n"
                "from vschaos.io import DiskFullError, atomic_jit_save, atomic_torch_save\n"
                "module = torch.nn.Linear(200, 200)\n"
                "for save in (lambda: atomic_torch_save(module.state_dict(), sys.argv[1] + '/x.ckpt'),\n"
                "             lambda: atomic_jit_save(torch.jit.script(module), sys.argv[1] + '/x.ts')):\n"
                "    try:\n"
                "        save()\n"
                "    except DiskFullError as error:\n"
                "        print(error)\n")
        done = subprocess.run([sys.executable, "-W", "ignore", "-c", code, str(small)], capture_output=True,
                              text=True, cwd=REPO, timeout=120)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert [line.split(" (")[0] for line in lines] == [f"disk full: cannot write {small}/x.ckpt",
                                                           f"disk full: cannot write {small}/x.ts"]
        assert all("free on its disk); the previous file, if any, is intact" in line for line in lines)
        assert os.listdir(small) == []


# ----------------------------------------------------------------------------- a read-only run folder

@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only: by its mode for a user, by a read-only bind mount for root (whom modes do
    not stop); skips where neither is possible."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for path in modes:
            path.chmod(0o555)
        try:
            yield folder
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    bound = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"a read-only bind mount is not permitted here: {bound.stderr.strip()}")
    try:
        remounted = subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True, text=True)
        if remounted.returncode != 0:
            pytest.skip(f"a read-only bind mount is not permitted here: {remounted.stderr.strip()}")
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_new_run_into_a_read_only_rundir_is_one_line(demo_root, tmp_path, capsys):
    rundir = tmp_path / "runs"
    rundir.mkdir()
    with _read_only(rundir):
        assert main(["--config-name", "demo", f"rundir={rundir}", f"data.dataset.root={demo_root}", *FAST]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"train_model.py: RunNotWritableError: cannot write in {rundir} (")
    assert line.endswith("): a new run creates its version folder there; set rundir= to a writable folder (nothing "
                         "was written)")
    assert list(rundir.iterdir()) == []


def test_a_resume_of_a_read_only_run_is_one_line(run_copy, capsys):
    before = _snapshot(run_copy)
    with _read_only(run_copy.parent.parent):
        assert main(["resume", str(run_copy.parent)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"train_model.py: RunNotWritableError: cannot write in {run_copy} (")
    assert line.endswith("): training writes its checkpoints and logs there; copy the run to a writable folder and "
                         "resume the copy (nothing was written)")
    assert _snapshot(run_copy) == before


def test_a_version_folder_that_cannot_be_created_is_one_line(demo_root, tmp_path, monkeypatch, capsys):
    """The early check passed (the folder was writable) but creating the version folder failed."""
    from vschaos.training import fit as fit_module

    def refused(run_root, environ):
        raise PermissionError(errno.EACCES, "Permission denied", str(run_root / "version_0"))

    monkeypatch.setattr(fit_module, "claim_version", refused)
    assert main(["--config-name", "demo", f"rundir={tmp_path}", f"data.dataset.root={demo_root}", *FAST]) == 1
    assert _one_line(capsys.readouterr().err) == (
        f"train_model.py: RunNotWritableError: cannot write in {tmp_path / 'demo'} (Permission denied): a new run "
        f"creates its version folder there; set rundir= to a writable folder (nothing was written)")


def test_a_resume_whose_trainer_options_are_refused_changes_nothing(run_copy, capsys):
    """The Trainer is built before resume records anything: an unknown option is one line, and the run folder
    (config.yaml, no resumes/ record) is as it was."""
    config_before = (run_copy / "config.yaml").read_bytes()
    assert main(["resume", str(run_copy), "+trainer.no_such_option=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trainer (or a callback it is given) refused the config" in err, err
    assert "no_such_option" in err
    assert (run_copy / "config.yaml").read_bytes() == config_before and not (run_copy / "resumes").exists()


@pytest.mark.parametrize("seed", ["abc", "1.5", "true"])
def test_a_seed_that_is_not_a_whole_number_is_one_line(run_copy, capsys, seed):
    config = OmegaConf.load(run_copy / "config.yaml")
    config.seed = {"abc": "abc", "1.5": 1.5, "true": True}[seed]
    (run_copy / "config.yaml").write_text(OmegaConf.to_yaml(config))
    assert main(["resume", str(run_copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed must be a whole number" in err, err


def test_a_resume_keeps_a_csv_loggers_earlier_metrics(demo_root, tmp_path, capsys):
    """Lightning's CSVLogger deletes metrics.csv when a resume starts it again: the record keeps the old one."""
    csv_logger = ["logger._target_=lightning.pytorch.loggers.CSVLogger", "~logger.default_hp_metric"]
    assert main(["--config-name", "demo", "name=csv", f"rundir={tmp_path}", f"data.dataset.root={demo_root}",
                 "trainer.max_epochs=1", *FAST, *csv_logger]) == 0
    version = tmp_path / "csv" / "version_0"
    before = (version / "metrics.csv").read_text()
    assert "epoch" in before
    assert main(["resume", str(version), "trainer.max_epochs=2"]) == 0
    assert (version / "resumes" / "1" / "metrics_before.csv").read_text() == before


def test_a_relative_cache_folder_is_stored_absolute_like_the_dataset_root(tmp_path, monkeypatch):
    """config.yaml is read again by resume from any directory: a relative data.cache_dir would build a second
    cache wherever the resume was started."""
    from vschaos.cli.train import compose_config
    from vschaos.training.fit import with_absolute_dataset_root

    monkeypatch.chdir(tmp_path)
    cfg = compose_config("demo", ["data.dataset.root=ds", "data.cache_dir=cache"])
    absolute = with_absolute_dataset_root(cfg)
    assert (absolute.data.dataset.root, absolute.data.cache_dir) == (str(tmp_path / "ds"), str(tmp_path / "cache"))
    assert cfg.data.cache_dir == "cache"  # a copy: the composed config is left as it was
    assert with_absolute_dataset_root(compose_config("demo", ["data.dataset.root=ds"])).data.cache_dir is None

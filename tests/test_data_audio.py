"""Reading sound files: which failures become AudioReadError, and which do not."""
import numpy as np
import pytest
import soundfile as sf

from vschaos.data import audio as audio_module
from vschaos.data.audio import AudioReadError, audio_info, load_audio


def bad_files(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all" * 8)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    directory = tmp_path / "folder.wav"
    directory.mkdir()
    return [garbage, empty, directory, tmp_path / "missing.wav"]


@pytest.mark.parametrize("read", [lambda p: load_audio(p, 8000), audio_info], ids=["load_audio", "audio_info"])
def test_undecodable_files_raise_audio_read_error_naming_the_file(tmp_path, read):
    for path in bad_files(tmp_path):
        with pytest.raises(AudioReadError, match=path.name):
            read(path)


def test_other_errors_are_not_disguised_as_bad_audio(tmp_path, monkeypatch):
    path = tmp_path / "ok.wav"
    sf.write(path, np.zeros(800, np.float32), 8000)
    assert load_audio(path, 8000).shape == (800,)

    def out_of_memory(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(audio_module.sf, "read", out_of_memory)
    monkeypatch.setattr(audio_module.sf, "info", out_of_memory)
    with pytest.raises(MemoryError):
        load_audio(path, 8000)
    with pytest.raises(MemoryError):
        audio_info(path)


@pytest.mark.parametrize("read", [lambda p: load_audio(p, 8000), audio_info], ids=["load_audio", "audio_info"])
def test_unreadable_audio_messages_name_the_file_once(tmp_path, read):
    for path in bad_files(tmp_path):
        with pytest.raises(AudioReadError) as caught:
            read(path)
        assert str(caught.value).count(path.name) == 1, str(caught.value)
        assert path.name not in caught.value.reason and caught.value.path == str(path)


def test_dataset_report_names_an_unreadable_file_once(tmp_path):
    from vschaos.data.dataset import validate_dataset

    (tmp_path / "data").mkdir()
    sf.write(tmp_path / "data/ok.wav", np.zeros(800, np.float32), 8000)
    (tmp_path / "data/broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00not a wave file at all" * 8)
    text = validate_dataset(tmp_path, sample_rate=8000).format()
    assert text.count("broken.wav") == 1, text
    assert "broken.wav: unreadable audio: cannot read audio header (" in text

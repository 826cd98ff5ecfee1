"""Hostile checks of the dgt_live preset (a pitch latent read from ``transform.pitch_window``): long sounds, run
folders that set a bad pitch window."""
import pytest
import torch

from test_pitch_window import live_vae  # noqa: E402  (one small dgt_live model for both files)


def test_audio_f0_reads_a_long_sound_in_bounded_blocks_with_the_whole_sounds_values():
    vae = live_vae()
    transform = vae.transform
    seen = []
    whole = transform.pitch_magnitude

    def recording(audio):  # the longest audio the long window is computed on at once
        seen.append(int(audio.shape[-1]))
        return whole(audio)

    for length in (1, 100, 2047, 9000):
        audio = torch.randn(2, length, generator=torch.Generator().manual_seed(length)) * 0.3
        magnitude = whole(audio)
        expected = vae.frame_f0(magnitude.reshape(-1, magnitude.shape[-1])).reshape(magnitude.shape[:-1])
        for block in (1, 7, 4096):
            got = vae.audio_f0(audio, block_frames=block)
            assert got.shape == (2, transform.num_frames(length))
            assert torch.equal(got, expected)
    long = torch.randn(1, 50 * 128, generator=torch.Generator().manual_seed(0))
    transform.pitch_magnitude = recording
    try:
        vae.audio_f0(long, block_frames=8)
    finally:
        del transform.pitch_magnitude
    # each block: its 8 frames and the 15 hops of history the first one reads, never the whole sound
    assert len(seen) == 7 and max(seen) == (8 + 2048 // 128 - 1) * 128


@pytest.mark.parametrize("window", [-128, 10 ** 9, 2 ** 16 + 128, 512, "abc", 2048.5, True, None, [2048]])
def test_a_run_folders_bad_pitch_window_is_one_line_before_anything_is_built(window):
    from omegaconf import OmegaConf

    from vschaos.generation.errors import GenerationError
    from vschaos.generation.limits import front_end

    cfg = OmegaConf.create({"transform": {"sample_rate": 44100, "n_fft": 512, "hop": 128, "pitch_window": window}})
    with pytest.raises(GenerationError, match=r"^run/config.yaml: transform.pitch_window is .*: must be 0 \(off\) or "
                                              r"a length above transform.n_fft \(512\), at most 65536 samples$"):
        front_end(cfg, "run/config.yaml")
    for good in (0, 2048, 2 ** 16):
        cfg.transform.pitch_window = good
        assert front_end(cfg, "run/config.yaml") == (44100, 512, 128)
    del cfg.transform["pitch_window"]  # a run from before the pitch window
    assert front_end(cfg, "run/config.yaml") == (44100, 512, 128)

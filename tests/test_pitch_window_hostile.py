"""Hostile checks of the dgt_live preset (a pitch latent read from ``transform.pitch_window``): long sounds, run
folders that set a bad pitch window."""
import pytest
import torch

from vschaos.cli.train import compose_config
from vschaos.training.run import build_model


def live_vae():
    torch.manual_seed(0)
    return build_model(compose_config("dgt_live", ["model.encoder.hidden_dims=32",
                                                   "model.decoder.hidden_dims=32"])).eval()


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

"""bench/call_profile.plugin_calls splits a plugin's calls into those that run hops of the model and those that only
queue (python -m bench.neutone_speed --compare reports both): the split must follow the wrapper's hops exactly."""
import importlib.util

import pytest

from bench.call_profile import ran_hops, split_medians

DEMO_RATE, DEMO_HOP = 22050, 256

needs_sdk = pytest.mark.skipif(importlib.util.find_spec("neutone_sdk") is None,
                               reason="the Neutone SDK is not installed: pip install -e .[neutone]")


def test_a_call_runs_hops_when_its_output_reaches_the_resampler_or_refills_the_queue():
    assert ran_hops((True, 512, 0), (True, 1024, 0), 128) and not ran_hops((True, 512, 0), (True, 512, 0), 128)
    # at the model's own rate a call plays `buffer` samples from the queue: less lost means hops were added
    assert not ran_hops((False, 0, 300), (False, 0, 236), 64) and ran_hops((False, 0, 300), (False, 0, 492), 64)
    assert split_medians([1.0, 10.0, 2.0, 3.0, 20.0], [False, True, False, False, True]) == (15.0, 2.0)
    assert split_medians([1.0, 2.0], [False, False]) == (None, 1.5)


@needs_sdk
@pytest.mark.parametrize("daw_rate, buffer, share", [(DEMO_RATE, 64, 0.25), (DEMO_RATE, DEMO_HOP, 1.0),
                                                     (48000, 64, 64 * DEMO_RATE / 48000 / DEMO_HOP)])
def test_plugin_calls_times_calls_that_run_hops_apart_from_those_that_only_queue(tmp_path, daw_rate, buffer, share):
    from bench.call_profile import plugin_calls
    from bench.neutone_speed import _Identity, save_shell

    path = save_shell(_Identity(), tmp_path / "identity.nm", [DEMO_RATE], [], hop=DEMO_HOP)
    [row] = plugin_calls([path], daw_rate, [buffer], rounds=2, seconds=0.01)
    assert row["hop_share"] == pytest.approx(share, abs=0.02)
    assert row["hop_us"] > 0 and (row["queue_us"] is None) == (share == 1.0)
    assert row["operations"] > 0 and row["min_us"] <= row["median_us"]

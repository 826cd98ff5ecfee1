"""Properties every module must have, checked over one registry of cases.

1. scripted equals eager: ``torch.jit.script`` (for the nn~ export: ``vschaos.export.script_model``)
   gives the eager module's output;
2. a batch of N equals N singles: each batch row is computed on its own (stateful streaming
   modules: one row at a time, with a ``reset()`` between rows, equals all rows at once);
3. streams equal offline: a streaming method fed in buffers of any multiple of the hop equals the
   offline computation on the whole signal, after the method's declared delay.

A case is a name, a factory of the module (tiny sizes, seeded weights), an input maker and the
method to call. Adding a module to ``CASES`` puts it under every property that applies; each
property has a deliberately broken module at the end of this file that it must catch.
"""
import copy
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from conftest import chirp, harmonic_tone, white_noise
from vschaos.dsp import functional as dsp
from vschaos.dsp.bounds import soft_clip
from vschaos.dsp.phase import griffin_lim, log_magnitude, pghi, phase_derivatives, phase_time_derivative
from vschaos.dsp.streaming import RTPGHI, StreamingAnalysis, StreamingSynthesis
from vschaos.dsp.transforms import SpectralTransform
from vschaos.export import StreamingVAE, script_model
from vschaos.models.components.decoders import SpectralDecoder, UpsamplingConvDecoder
from vschaos.models.components.encoders import SpectralEncoder
from vschaos.models.vae import SpectralVAE

SR, N_FFT, HOP = 8000, 256, 64
N_BINS = N_FFT // 2 + 1
N_ROWS = 3  # property 2: a batch of N_ROWS equals N_ROWS singles
HOPS = 24  # signal length in hops (frames) of every streamed input
LATENT = 4
# the uneven buffer plan (in hops) that properties 1 and 2 stream stateful modules with
UNEVEN = (1, 3, 2, 5, 1, 4)
# property 3's buffer plans, in hops: constant sizes and an uneven sequence (cycled)
BUFFER_PLANS = {"hop": (1,), "2hop": (2,), "4hop": (4,), "uneven": UNEVEN}


# ------------------------------------------------------------------------------ inputs
def sounds(batch: int, hops: int = HOPS) -> Tensor:
    """``(batch, hops * HOP)`` audio, a different sound per row: harmonic tones, chirps, noise."""
    length = hops * HOP
    makers = [lambda i: harmonic_tone(150.0 * (i + 1), 1.0, SR, seed=i),
              lambda i: chirp(100.0 + 50 * i, 3500.0, 1.0, SR),
              lambda i: white_noise(1.0, SR, seed=i)]
    return torch.from_numpy(np.stack([makers[i % 3](i)[:length] for i in range(batch)]))


def magnitudes(batch: int, hops: int = HOPS) -> Tensor:
    """DGT magnitudes ``(batch, hops, bins)`` of :func:`sounds`."""
    return dsp.dgt(sounds(batch, hops), dsp.gaussian_window(N_FFT), HOP)[:, :hops].abs()


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def class_ids(batch: int, n_classes: int, seed: int) -> Tensor:
    """One class id per row, ``-1`` (missing) among them when there are enough rows."""
    ids = torch.randint(0, n_classes, (batch,), generator=torch.Generator().manual_seed(seed))
    if batch > 1:
        ids[1] = -1
    return ids


# ------------------------------------------------------------------------------ modules
def transform(log_floor_db: Optional[float] = None) -> SpectralTransform:
    """A tiny transform with a non-trivial normalisation (so that to/from_features do something)."""
    t = SpectralTransform(SR, N_FFT, HOP, log_floor_db=log_floor_db)
    t.set_normalisation(torch.linspace(0.5, 0.05, N_BINS), torch.linspace(0.6, 0.1, N_BINS))
    return t


TINY_ENCODER = {"channels": [4, 8], "kernel_size": 5, "stride": 2, "hidden_dims": 32, "nlayers": 1}
# conditioned: pitch on the decoder (completed by its predictor when missing), style on the encoder
CONDITIONING = {"pitch": {"dim": 12, "target": ["decoder"], "embedding": "OneHot"},
                "style": {"dim": 3, "target": ["encoder"], "embedding": "Embedding", "embedding_dim": 2}}
PREDICTION = {"pitch": {"dim": 12, "type": "MLPEncoder",
                        "args": {"nlayers": 1, "hidden_dims": 16, "target_dist": "Categorical"}}}


def vae(conditioned: bool) -> SpectralVAE:
    """Tiny VAE, seeded: the same weights at every call. The conditioned one also uses the
    convolutional decoder, so that both decoders run inside a VAE (and inside the export)."""
    torch.manual_seed(0)
    if conditioned:
        return SpectralVAE(transform(), LATENT, encoder=TINY_ENCODER,
                           decoder={"type": "UpsamplingConvDecoder", "channels": [4, 2], "kernel_size": 5,
                                    "stride": 2, "hidden_dims": 16, "nlayers": 1},
                           conditioning=CONDITIONING, prediction=PREDICTION).eval()
    return SpectralVAE(transform(), LATENT, encoder=TINY_ENCODER,
                       decoder={"channels": [], "hidden_dims": 32, "nlayers": 1}).eval()


def vae_labels(model: SpectralVAE, tasks: Sequence[str], batch: int) -> Dict[str, Tensor]:
    return {task: class_ids(batch, model.task_dims[task], seed=i) for i, task in enumerate(tasks)}


def seeded(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return factory().eval()
    return build


# ------------------------------------------------------------------------------ the nn~ export
def export_input(conditioned: bool, method: str, batch: int) -> Tensor:
    """An nn~ buffer for ``method``: audio or latents, then one label inlet per task, holding
    each row's class id (constant in time; -1 = unknown)."""
    model = vae(conditioned)
    streaming = StreamingVAE(model)
    tasks = {"encode": streaming.encoder_tasks, "decode": streaming.decoder_tasks,
             "forward": streaming.forward_tasks}[method]
    if method == "decode":
        signal = 0.8 * randn(batch, LATENT, HOPS, seed=4)
    else:
        signal = sounds(batch).unsqueeze(1)
    length = signal.shape[-1]
    inlets = [signal] + [class_ids(batch, model.task_dims[t], seed=i).float()[:, None, None].expand(batch, 1, length)
                         for i, t in enumerate(tasks)]
    return torch.cat(inlets, dim=1)


def frame_labels(x: Tensor, first: int, tasks: Sequence[str], per_frame: int) -> Dict[str, Tensor]:
    """The label inlets' class ids, one per frame, flattened like the frames ``(batch * frames,)``."""
    return {t: x[:, first + i, per_frame - 1::per_frame].round().long().reshape(-1) for i, t in enumerate(tasks)}


def offline_export(conditioned: bool, method: str) -> Callable[[Any, Tensor], Tensor]:
    """The export's method computed offline by the eager pipeline on the whole signal: the DGT of
    all of it, the VAE on all frames at once, RTPGHI in one call, the inverse DGT."""
    def run(_: Any, x: Tensor) -> Tensor:
        model = vae(conditioned)
        t = model.transform
        streaming = StreamingVAE(model)  # for its task lists only
        batch = x.shape[0]
        with torch.no_grad():
            if method == "decode":
                frames = x.shape[-1]
                z = x[:, :LATENT].transpose(1, 2).reshape(-1, LATENT)
                features = model.decode(z, frame_labels(x, LATENT, streaming.decoder_tasks, 1))
            else:
                frames = x.shape[-1] // HOP
                spec = dsp.dgt(x[:, 0], t.window, HOP)[:, :frames]  # offline has trailing frames
                inputs = t.to_features(spec.abs()).reshape(-1, N_BINS)
                tasks = streaming.encoder_tasks if method == "encode" else streaming.forward_tasks
                labels = frame_labels(x, 1, tasks, HOP)
                mean, _ = model.encode(inputs, {k: labels[k] for k in streaming.encoder_tasks})
                if method == "encode":
                    outputs = [mean] + [model.predict(mean)[k].argmax(-1, keepdim=True).float()
                                        for k in streaming.predicted_tasks]
                    return torch.cat(outputs, dim=-1).reshape(batch, frames, -1).transpose(1, 2)
                features = model.decode(mean, {k: labels[k] for k in streaming.decoder_tasks})
            magnitude = t.from_features(features).reshape(batch, frames, N_BINS)
            if method == "forward":  # the level attribute's default: each frame at the input frame's energy
                magnitude = dsp.follow_level(magnitude, spec)
            phase = RTPGHI(N_FFT, HOP, t.lam)(magnitude)
            return soft_clip(dsp.idgt(torch.polar(magnitude, phase), t.dual, HOP, frames * HOP)).unsqueeze(1)
    return run


def export_delay(method: str) -> Callable[[Any], int]:
    """The lag of the stream behind the offline result, from the module's declared delays."""
    if method == "encode":
        return lambda m: 0  # in frames: frame k is emitted by the call holding hop k, as offline
    if method == "decode":
        # offline idgt centres frame t at t * hop + hop - n_fft / 2; the stream at t * hop + decode_delay
        return lambda m: int(m.decode_delay[0]) + m.n_fft // 2 - m.hop
    return lambda m: int(m.forward_delay[0])


# ------------------------------------------------------------------------------ comparison
def assert_tree_close(actual: Any, expected: Any, atol: float, rtol: float) -> None:
    """``assert_close`` through tuples, lists and dicts (same keys), with a guard that the output is
    not empty: a property of nothing would pass whatever the module does."""
    if isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            assert_tree_close(actual[key], expected[key], atol, rtol)
    elif isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_tree_close(a, e, atol, rtol)
    else:
        assert expected.numel() > 0
        torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


def close(atol: float = 1e-5, rtol: float = 1.3e-6):
    return lambda actual, expected, args: assert_tree_close(actual, expected, atol, rtol)


def phases_close(atol: float, where_magnitude_above: float = 0.0, magnitude_arg: int = 0):
    """Phases agree modulo 2 pi (values near +-pi may wrap either way), on the bins whose
    magnitude (argument ``magnitude_arg`` of the call) is above that fraction of its maximum."""
    def check(actual: Tensor, expected: Tensor, args: Tuple) -> None:
        assert expected.numel() > 0 and actual.shape == expected.shape
        error = torch.remainder(actual - expected + math.pi, 2 * math.pi) - math.pi
        magnitude = args[magnitude_arg][..., : actual.shape[-2], :]  # a stream's compared frames
        reliable = magnitude > where_magnitude_above * magnitude.amax(dim=(-2, -1), keepdim=True)
        assert reliable.any()
        worst = error.abs()[reliable].max().item()
        assert worst <= atol, f"phase differs by {worst:.3g} rad (tolerance {atol:g})"
    return check


EXACT = close(0.0, 0.0)


# ------------------------------------------------------------------------------ the registry
def _script(module: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(copy.deepcopy(module))


@dataclass(frozen=True)
class Stream:
    """How a streaming method streams: ``unit`` input steps per hop along the input's last
    streamed axis ``in_axis`` (``HOP`` samples of audio, or 1 frame), the output's time axis, the
    offline reference ``offline(module, whole_input)`` and the declared delay ``delay(module)``
    of the stream behind it (in output steps)."""
    unit: int
    in_axis: int
    out_axis: int
    offline: Callable[[Any, Tensor], Any]
    delay: Callable[[Any], int] = lambda m: 0
    close: Optional[Callable] = None  # the comparison with the offline result (default: the case's)


@dataclass(frozen=True)
class Case:
    """``build()`` -> a fresh module (seeded weights); ``inputs(batch)`` -> the call's arguments, each
    tensor argument with the batch on axis 0 (dicts of such tensors too); ``call(module, *args)``.
    Streaming cases: ``inputs`` is the whole signal, which properties 1 and 2 feed in the UNEVEN
    buffer plan. ``deployed_scripted``: hosts run the scripted module (the nn~ export), so
    properties 2 and 3 check that form."""
    name: str
    build: Callable[[], Any]
    inputs: Callable[[int], Tuple]
    call: Callable[..., Any]
    script: Callable[[Any], Any] = _script
    scripted_close: Callable = EXACT
    batch_close: Callable = close()
    scriptable: bool = True
    stream: Optional[Stream] = None
    deployed_scripted: bool = False

    def __repr__(self) -> str:  # pytest ids
        return self.name


def method(name: str) -> Callable[..., Any]:
    return lambda module, *args: getattr(module, name)(*args)


def transform_cases(label: str, log_floor_db: Optional[float]) -> List[Case]:
    build = lambda: transform(log_floor_db)  # noqa: E731
    features = lambda b: (transform(log_floor_db).to_features(magnitudes(b)),)  # noqa: E731
    cases = [
        Case(f"transform-{label}.magnitude", build, lambda b: (sounds(b),), method("magnitude")),
        Case(f"transform-{label}.to_features", build, lambda b: (magnitudes(b),), method("to_features")),
        Case(f"transform-{label}.from_features", build, features, method("from_features")),
    ]
    if log_floor_db is None:
        cases += [
            Case("transform-log1p.forward", build, lambda b: (sounds(b),), method("forward")),
            Case("transform-log1p.synthesise", build,
                 lambda b: (dsp.dgt(sounds(b), dsp.gaussian_window(N_FFT), HOP),),
                 lambda m, spec: m.synthesise(spec, HOPS * HOP)),
        ]
    return cases


def vae_cases(conditioned: bool) -> List[Case]:
    label = "vae-conditioned" if conditioned else "vae"
    build = lambda: vae(conditioned)  # noqa: E731

    def encoder_labels(b: int) -> Dict[str, Tensor]:
        model = vae(conditioned)
        return vae_labels(model, model.encoder_tasks, b)

    def decoder_labels(b: int) -> Dict[str, Tensor]:
        model = vae(conditioned)
        return vae_labels(model, model.decoder_tasks, b)

    features = lambda b: transform().to_features(magnitudes(b, 2).reshape(-1, N_BINS))[:b]  # noqa: E731
    cases = [
        Case(f"{label}.encode", build, lambda b: (features(b), encoder_labels(b)), method("encode")),
        Case(f"{label}.decode", build, lambda b: (randn(b, LATENT, seed=2), decoder_labels(b)), method("decode")),
    ]
    if conditioned:
        cases += [
            Case(f"{label}.predict", build, lambda b: (randn(b, LATENT, seed=3),), method("predict")),
            Case(f"{label}.complete_labels", build, lambda b: (randn(b, LATENT, seed=3), decoder_labels(b)),
                 method("complete_labels")),
        ]
    return cases


def export_cases(conditioned: bool) -> List[Case]:
    label = "export-conditioned" if conditioned else "export"
    cases = []
    for name, unit in (("encode", HOP), ("decode", 1), ("forward", HOP)):
        stream = Stream(unit=unit, in_axis=-1, out_axis=-1, offline=offline_export(conditioned, name),
                        delay=export_delay(name), close=close(1e-4, 1e-3))
        cases.append(Case(
            f"{label}.{name}",
            build=lambda conditioned=conditioned: StreamingVAE(vae(conditioned)).eval(),
            inputs=lambda b, conditioned=conditioned, name=name: (export_input(conditioned, name, b),),
            call=method(name),
            script=lambda module: script_model(module.vae),  # what the export writes
            scripted_close=close(1e-5, 1e-5), batch_close=close(1e-5, 1e-4), stream=stream, deployed_scripted=True))
    return cases


def window_and_dual() -> Tuple[Tensor, Tensor]:
    window = dsp.gaussian_window(N_FFT)
    return window, dsp.dual_window(window, HOP)


LAM = dsp.gaussian_lambda(N_FFT)

CASES: List[Case] = [
    *transform_cases("log1p", None),
    *transform_cases("log-floor", -90.0),
    Case("SpectralEncoder", seeded(lambda: SpectralEncoder(N_BINS, 8, channels=[4, 8], kernel_size=5, stride=2,
                                                           hidden_dims=16, nlayers=1, cond_dim=3)),
         lambda b: (randn(b, N_BINS), randn(b, 3, seed=1)), method("forward"), scripted_close=close(1e-6, 1e-6)),
    Case("SpectralDecoder-mlp", seeded(lambda: SpectralDecoder(6, N_BINS, channels=[], hidden_dims=16, nlayers=1)),
         lambda b: (randn(b, 6),), method("forward"), scripted_close=close(1e-6, 1e-6)),
    Case("SpectralDecoder-deconv", seeded(lambda: SpectralDecoder(6, 100, channels=[8, 4, 2], kernel_size=7,
                                                                  stride=4, hidden_dims=16, nlayers=1)),
         lambda b: (randn(b, 6),), method("forward"), scripted_close=close(1e-6, 1e-6)),
    Case("UpsamplingConvDecoder", seeded(lambda: UpsamplingConvDecoder(6, 100, channels=[8, 4, 2], kernel_size=5,
                                                                       stride=4, hidden_dims=16, nlayers=1)),
         lambda b: (randn(b, 6),), method("forward"), scripted_close=close(1e-6, 1e-6)),
    *vae_cases(conditioned=False),
    *vae_cases(conditioned=True),
    # RTPGHI (streaming, exported) reuses these phase-gradient helpers
    Case("phase_derivatives", lambda: phase_derivatives, lambda b: (log_magnitude(magnitudes(b)),),
         lambda f, log_mag: f(log_mag, LAM, HOP, N_FFT)),
    Case("phase_time_derivative", lambda: phase_time_derivative, lambda b: (log_magnitude(magnitudes(b)),),
         lambda f, log_mag: f(log_mag, LAM, HOP, N_FFT)),
    Case("StreamingAnalysis", lambda: StreamingAnalysis(window_and_dual()[0], HOP), lambda b: (sounds(b),),
         method("forward"),
         stream=Stream(unit=HOP, in_axis=-1, out_axis=1,
                       offline=lambda m, audio: dsp.dgt(audio, m.window, HOP), close=close(1e-4, 1e-5))),
    Case("StreamingSynthesis", lambda: StreamingSynthesis(window_and_dual()[1], HOP),
         # magnitudes of real sounds with random phases: inconsistent spectra too
         lambda b: (torch.polar(magnitudes(b), 6.0 * torch.rand(b, HOPS, N_BINS, generator=torch.Generator()
                                                                   .manual_seed(5))),),
         method("forward"),
         stream=Stream(unit=1, in_axis=1, out_axis=-1, delay=lambda m: m.delay,
                       offline=lambda m, spec: dsp.idgt(spec, m.dual, HOP, spec.shape[1] * HOP))),
    Case("RTPGHI", lambda: RTPGHI(N_FFT, HOP, LAM), lambda b: (magnitudes(b),), method("forward"),
         scripted_close=phases_close(0.0), batch_close=phases_close(1e-4),
         stream=Stream(unit=1, in_axis=1, out_axis=1, offline=lambda m, mag: RTPGHI(N_FFT, HOP, LAM)(mag),
                       close=phases_close(1e-4))),
    # offline phase reconstruction (numba and torch, not scripted): rows are independent; where the
    # magnitude is tiny the phase carries nothing (PGHI gives it a random phase)
    Case("pghi", lambda: (lambda mag: pghi(mag, LAM, HOP, N_FFT, generator=torch.Generator().manual_seed(0))),
         lambda b: (magnitudes(b),), lambda f, mag: f(mag), scriptable=False,
         batch_close=phases_close(1e-4, where_magnitude_above=1e-4)),
    Case("griffin_lim", lambda: (lambda mag, phase: griffin_lim(mag, phase, *window_and_dual(), HOP,
                                                                   (HOPS - N_FFT // HOP + 1) * HOP, n_iter=3)),
         lambda b: (magnitudes(b), pghi(magnitudes(b), LAM, HOP, N_FFT, generator=torch.Generator().manual_seed(0))),
         lambda f, mag, phase: f(mag, phase), scriptable=False,
         batch_close=phases_close(1e-3, where_magnitude_above=1e-3)),
    *export_cases(conditioned=False),
    *export_cases(conditioned=True),
]


# ------------------------------------------------------------------------------ the properties
def buffers(x: Tensor, axis: int, unit: int, plan: Sequence[int]) -> List[Tensor]:
    """``x`` cut along ``axis`` into buffers of ``plan[k] * unit`` (the plan cycled, the last cut short)."""
    out, start, k = [], 0, 0
    length = x.shape[axis]
    while start < length:
        size = plan[k % len(plan)] * unit
        out.append(x.narrow(axis, start, min(size, length - start)))
        start, k = start + size, k + 1
    return out


def calls(case: Case, batch: int) -> List[Tuple]:
    """The argument tuples the case is called with, in order: one call, or a stream in UNEVEN buffers."""
    args = case.inputs(batch)
    if case.stream is None:
        return [args]
    (signal,) = args
    return [(chunk,) for chunk in buffers(signal, case.stream.in_axis, case.stream.unit, UNEVEN)]


def row(tree: Any, index: int) -> Any:
    """Row ``index`` of every tensor in ``tree`` (batch axis kept, of size 1); other values as they are."""
    if isinstance(tree, Tensor):
        return tree[index:index + 1]
    if isinstance(tree, dict):
        return {key: row(value, index) for key, value in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(row(value, index) for value in tree)
    return tree


_SCRIPTED: Dict[str, Any] = {}


def scripted_form(case: Case) -> Any:
    """The case's scripted module, scripted once per session and ``reset()`` at each use: a scripted
    module's first calls are slow (TorchScript profiles and optimises its graphs)."""
    if case.name not in _SCRIPTED:
        _SCRIPTED[case.name] = case.script(case.build())
    module = _SCRIPTED[case.name]
    if hasattr(module, "reset"):
        module.reset()
    return module


def deployed(case: Case) -> Any:
    return scripted_form(case) if case.deployed_scripted else case.build()


def check_scripted_equals_eager(case: Case) -> None:
    eager, scripted = case.build(), scripted_form(case)
    with torch.no_grad():
        for args in calls(case, N_ROWS):  # stateful modules: their state must evolve alike too
            case.scripted_close(case.call(scripted, *args), case.call(eager, *args), args)


def check_batch_equals_singles(case: Case) -> None:
    module = deployed(case)
    all_calls = calls(case, N_ROWS)
    with torch.no_grad():
        together = [case.call(module, *args) for args in all_calls]
        for index in range(N_ROWS):
            if hasattr(module, "reset"):
                module.reset()  # a stream starts afresh for each row
            for args, batch_out in zip(all_calls, together):
                args_alone = row(args, index)
                case.batch_close(row(batch_out, index), case.call(module, *args_alone), args_alone)


def check_stream_equals_offline(case: Case, plan: Sequence[int]) -> None:
    stream = case.stream
    module = deployed(case)
    (signal,) = case.inputs(N_ROWS)
    with torch.no_grad():
        streamed = torch.cat([case.call(module, chunk) for chunk in buffers(signal, stream.in_axis, stream.unit, plan)],
                             dim=stream.out_axis)
        offline = stream.offline(module, signal)
    delay = stream.delay(module)
    usable = streamed.shape[stream.out_axis] - delay
    assert usable >= streamed.shape[stream.out_axis] // 4, "the signal is too short for the delay"
    compare = stream.close or case.batch_close
    compare(streamed.narrow(stream.out_axis, delay, usable), offline.narrow(stream.out_axis, 0, usable), (signal,))


def _ids(cases: List[Case]) -> List[str]:
    return [case.name for case in cases]


SCRIPTABLE = [case for case in CASES if case.scriptable]
STREAMING = [case for case in CASES if case.stream is not None]


@pytest.mark.parametrize("case", SCRIPTABLE, ids=_ids(SCRIPTABLE))
def test_scripted_equals_eager(case):
    check_scripted_equals_eager(case)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_a_batch_of_n_equals_n_singles(case):
    check_batch_equals_singles(case)


@pytest.mark.parametrize("plan", list(BUFFER_PLANS.values()), ids=list(BUFFER_PLANS))
@pytest.mark.parametrize("case", STREAMING, ids=_ids(STREAMING))
def test_stream_equals_offline(case, plan):
    check_stream_equals_offline(case, plan)


# ------------------------------------------------------------------------------ the checks can fail
class ScriptedPathDiffers(nn.Module):
    """Broken: its TorchScript branch is not its Python branch (e.g. a scripting workaround that
    drifted from the eager code)."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting():
            return x + 1e-3
        return x


class MixesBatchRows(nn.Module):
    """Broken: normalises by statistics over the batch axis, so a row depends on the others."""

    def forward(self, x: Tensor) -> Tensor:
        return x - x.mean(dim=0, keepdim=True)


class ForgetfulAnalysis(StreamingAnalysis):
    """Broken: forgets the previous buffer's samples at every call."""

    def forward(self, audio: Tensor) -> Tensor:
        self.reset()
        return super().forward(audio)


class EarlySynthesis(StreamingSynthesis):
    """Broken: declares a delay one hop shorter than it has."""

    def __init__(self, dual: Tensor, hop: int) -> None:
        super().__init__(dual, hop)
        self.delay = self.n_fft - 2 * self.hop


def test_scripted_equals_eager_catches_a_scripted_path_that_differs():
    case = Case("broken-scripted-path", ScriptedPathDiffers, lambda b: (randn(b, 5),), method("forward"))
    with pytest.raises(AssertionError):
        check_scripted_equals_eager(case)


def test_a_batch_of_n_equals_n_singles_catches_a_module_that_mixes_rows():
    case = Case("broken-mixes-rows", MixesBatchRows, lambda b: (randn(b, 5),), method("forward"))
    with pytest.raises(AssertionError):
        check_batch_equals_singles(case)


def broken_stream(name: str, build: Callable[[], Any]) -> Case:
    """The registry's case ``name`` with a broken module in place of its own."""
    case = {case.name: case for case in STREAMING}[name]
    return Case(f"broken-{name}", build, case.inputs, case.call, stream=case.stream)


def test_stream_equals_offline_catches_a_stream_that_forgets_its_state():
    case = broken_stream("StreamingAnalysis", lambda: ForgetfulAnalysis(window_and_dual()[0], HOP))
    check_stream_equals_offline(case, plan=(HOPS,))  # in one buffer there is nothing to forget...
    with pytest.raises(AssertionError):
        check_stream_equals_offline(case, plan=(1,))  # ... buffer by buffer it shows


def test_stream_equals_offline_catches_a_wrong_declared_delay():
    case = broken_stream("StreamingSynthesis", lambda: EarlySynthesis(window_and_dual()[1], HOP))
    with pytest.raises(AssertionError):
        check_stream_equals_offline(case, plan=(HOPS,))

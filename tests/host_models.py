"""Tiny nn~ models scripted for the host tests: good ones and deliberately broken ones."""
from typing import List, Tuple

import torch
from torch import Tensor, nn


class NNModel(nn.Module):
    """Minimal nn~ contract: methods registered with ``<m>_params`` and listed by ``get_methods``."""

    def __init__(self):
        super().__init__()
        self.methods: List[str] = []
        self.attribute_names: List[str] = []
        self.__annotations__ = {"methods": List[str], "attribute_names": List[str]}

    def register_method(self, name: str, params: List[int], delay: int = -1) -> None:
        self.register_buffer(f"{name}_params", torch.tensor(params))
        if delay >= 0:
            self.register_buffer(f"{name}_delay", torch.tensor([delay]))
        self.methods.append(name)

    @torch.jit.export
    def get_methods(self) -> List[str]:
        return self.methods

    @torch.jit.export
    def get_attributes(self) -> List[str]:
        return self.attribute_names


class Gain(NNModel):
    """forward: (1,1,1,1), y = gain * x; ``gain`` is a float attribute."""

    def __init__(self, gain: float = 0.5):
        super().__init__()
        self.register_method("forward", [1, 1, 1, 1])
        self.input_gain = gain
        self.forward_input_labels: List[str] = ["(signal) input"]
        self.forward_output_labels: List[str] = ["(signal) output"]
        self.attribute_names = ["gain"]
        self.register_buffer("gain_params", torch.tensor([2]))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.input_gain

    @torch.jit.export
    def get_gain(self) -> Tuple[float]:
        return (self.input_gain,)

    @torch.jit.export
    def set_gain(self, gain: float) -> int:
        self.input_gain = gain
        return 0


class BufferRounding(NNModel):
    """forward: (1,1,1,1), y = 5 x (1 + 3e-4 for calls of at most 2048 samples): an output that depends
    on the buffer length at the level of a deep model's float32 rounding (BLAS kernels change with the number of
    frames a call batches), at an output peak near 4 like a spectral model in its soft clip."""

    def __init__(self):
        super().__init__()
        self.register_method("forward", [1, 1, 1, 1], delay=0)

    def forward(self, x: Tensor) -> Tensor:
        scale = 5.0 * (1.0 + 3e-4) if x.shape[-1] <= 2048 else 5.0
        return x * scale


class RMSCodec(NNModel):
    """encode (1,1,4,512): per 512-sample frame [rms, mean, peak, last]; decode (4,512,1,1): held rms+mean."""

    def __init__(self, short_frame: bool = False, swap_axes: bool = False):
        super().__init__()
        self.hop = 512
        self.short_frame = short_frame
        self.swap_axes = swap_axes
        self.register_method("encode", [1, 1, 4, 512])
        self.register_method("decode", [4, 512, 1, 1])

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        frames = x.reshape(x.shape[0], x.shape[-1] // self.hop, self.hop)  # (batch, frames, hop)
        features = torch.stack([frames.pow(2).mean(-1).sqrt(), frames.mean(-1), frames.abs().amax(-1),
                                frames[..., -1]], dim=1)  # (batch, 4, frames)
        if self.short_frame:
            features = features[..., :-1]
        if self.swap_axes:
            features = features.transpose(1, 2).reshape(features.shape)
        return features

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        return (z[:, 0:1] + z[:, 1:2]).repeat_interleave(self.hop, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class Hold(NNModel):
    """forward (1,4,1,4): identity at control rate, to check decimation and sample-and-hold."""

    def __init__(self):
        super().__init__()
        self.register_method("forward", [1, 4, 1, 4])

    def forward(self, x: Tensor) -> Tensor:
        return x


class Mixer(NNModel):
    """forward (2,1,3,1): outputs [x0, x1, x0 + 10 * x1], to check channel/batch ordering."""

    def __init__(self):
        super().__init__()
        self.register_method("forward", [2, 1, 3, 1])

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, x[:, 0:1] + 10.0 * x[:, 1:2]], dim=1)


class DelayLine(NNModel):
    """forward (1,1,1,1): y[n] = x[n - delay], state per batch row; declares ``declared`` samples."""

    def __init__(self, delay: int = 100, declared: int = 100, forget_state: bool = False, with_reset: bool = True):
        super().__init__()
        self.delay = delay
        self.forget_state = forget_state
        self.register_method("forward", [1, 1, 1, 1], delay=declared)
        self.register_buffer("history", torch.zeros(1, 1, delay))

    def forward(self, x: Tensor) -> Tensor:
        if self.history.shape[0] != x.shape[0] or self.forget_state:
            self.history = torch.zeros(x.shape[0], x.shape[1], self.delay)
        joined = torch.cat([self.history, x], dim=-1)
        self.history = joined[..., joined.shape[-1] - self.delay:]
        return joined[..., :x.shape[-1]]

    @torch.jit.export
    def reset(self) -> None:
        self.history = torch.zeros(1, 1, self.delay)


class OnePole(NNModel):
    """forward (1,1,1,1): y[n] = a y[n-1] + (1 - a) x[n]; no reset() (the host reloads)."""

    def __init__(self, coefficient: float = 0.9):
        super().__init__()
        self.coefficient = coefficient
        self.register_method("forward", [1, 1, 1, 1])
        self.register_buffer("last", torch.zeros(1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.last.shape[0] != x.shape[0]:
            self.last = torch.zeros(x.shape[0], x.shape[1])
        # Blockwise closed form (64-sample blocks keep a^-k small): within a block,
        # y[i] = a^(i+1) state + sum_{j<=i} (1-a) a^(i-j) x[j].
        n = x.shape[-1]
        y = torch.zeros_like(x)
        state = self.last
        block = 64
        for start in range(0, n, block):
            stop = min(start + block, n)
            idx = torch.arange(stop - start, dtype=x.dtype)
            lags = idx.unsqueeze(1) - idx.unsqueeze(0)  # (i, j) -> i - j
            matrix = torch.where(lags >= 0, (1 - self.coefficient) * self.coefficient ** lags.clamp(min=0),
                                 torch.zeros_like(lags))
            carried = state.unsqueeze(-1) * self.coefficient ** (idx + 1)
            y[..., start:stop] = x[..., start:stop] @ matrix.t() + carried
            state = y[..., stop - 1]
        self.last = state
        return y


class AttributeModel(NNModel):
    """forward (1,1,1,1) with bool/int/float/str attributes: y = x * gain * (not muted) + offset."""

    def __init__(self):
        super().__init__()
        self.register_method("forward", [1, 1, 1, 1])
        self.muted = False
        self.steps = 3
        self.gain = 1.0
        self.mode = "clean"
        self.attribute_names = ["muted", "steps", "gain", "mode", "range"]
        self.low = 0.0
        self.high = 1.0
        self.register_buffer("muted_params", torch.tensor([0]))
        self.register_buffer("steps_params", torch.tensor([1]))
        self.register_buffer("gain_params", torch.tensor([2]))
        self.register_buffer("mode_params", torch.tensor([3]))
        self.register_buffer("range_params", torch.tensor([2, 2]))

    def forward(self, x: Tensor) -> Tensor:
        scale = 0.0 if self.muted else self.gain
        return x * scale + float(self.steps) * 0.0

    @torch.jit.export
    def get_muted(self) -> Tuple[bool]:
        return (self.muted,)

    @torch.jit.export
    def set_muted(self, value: bool) -> int:
        self.muted = value
        return 0

    @torch.jit.export
    def get_steps(self) -> Tuple[int]:
        return (self.steps,)

    @torch.jit.export
    def set_steps(self, value: int) -> int:
        if value < 0:
            return -1
        self.steps = value
        return 0

    @torch.jit.export
    def get_gain(self) -> Tuple[float]:
        return (self.gain,)

    @torch.jit.export
    def set_gain(self, value: float) -> int:
        self.gain = value
        return 0

    @torch.jit.export
    def get_mode(self) -> Tuple[str]:
        return (self.mode,)

    @torch.jit.export
    def set_mode(self, value: str) -> int:
        if value not in ["clean", "dirty"]:
            return -1
        self.mode = value
        return 0

    @torch.jit.export
    def get_range(self) -> Tuple[float, float]:
        return (self.low, self.high)

    @torch.jit.export
    def set_range(self, low: float, high: float) -> int:
        self.low = low
        self.high = high
        return 0


class OldStyle(nn.Module):
    """An old export: float ``_params``, ``"none"`` in the attribute list, a scalar getter."""

    def __init__(self):
        super().__init__()
        self.register_buffer("forward_params", torch.tensor([1.0, 1.0, 1.0, 1.0]))
        self.register_buffer("decode_params", torch.tensor([2.0, 256.0, 1.0, 1.0]))
        self.volume = 0.25

    def forward(self, x: Tensor) -> Tensor:
        return x * self.volume

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        return z[:, :1].repeat_interleave(256, dim=-1)

    @torch.jit.export
    def get_attributes(self) -> List[str]:
        return ["none", "volume"]

    @torch.jit.export
    def get_volume(self) -> float:
        return self.volume

    @torch.jit.export
    def set_volume(self, value: float) -> int:
        self.volume = value
        return 0


class NaNModel(NNModel):
    """forward (1,1,1,1) returning NaN where the input is above 0.4."""

    def __init__(self):
        super().__init__()
        self.register_method("forward", [1, 1, 1, 1])

    def forward(self, x: Tensor) -> Tensor:
        return torch.where(x > 0.4, torch.full_like(x, float("nan")), x)


class Raising(NNModel):
    """forward (1,1,1,1) that raises when called with a buffer larger than 1024."""

    def __init__(self):
        super().__init__()
        self.register_method("forward", [1, 1, 1, 1])

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] > 1024:
            raise RuntimeError("buffer too large for this model")
        return x


class IdentitySpectral(NNModel):
    """encode (1,1,R,R) / decode (R[+1],R,1,1): frames of R samples as R channels, and back.

    ``encode`` delays its input by ``encode_delay`` samples, then outputs each R-sample frame as the
    R channels of one control frame; ``decode`` lays the channels back out as samples, then delays by
    ``decode_delay``. So decode(encode(x)) is x delayed by exactly their sum. Delays live in per-row
    history buffers so that streaming equals offline. ``declared_*`` default to the true delays.
    ``label_inlet``: decode takes one more inlet ``g`` and outputs ``(1 + g) * audio`` (zeros keep the
    identity; -1 would silence it). ``alternate_signs``: decode flips every other sample's sign, so
    its output waveform no longer resembles the input, but its envelope does (the round trip is
    measured by envelope).
    """

    def __init__(self, ratio: int = 8, encode_delay: int = 5, decode_delay: int = 11,
                 declared_encode: int = -1, declared_decode: int = -1, label_inlet: bool = False,
                 alternate_signs: bool = False):
        super().__init__()
        self.ratio = ratio
        self.encode_lag = encode_delay
        self.decode_lag = decode_delay
        self.label_inlet = label_inlet
        self.alternate_signs = alternate_signs
        self.register_method("encode", [1, 1, ratio, ratio],
                             delay=encode_delay if declared_encode < 0 else declared_encode)
        self.register_method("decode", [ratio + int(label_inlet), ratio, 1, 1],
                             delay=decode_delay if declared_decode < 0 else declared_decode)
        self.register_buffer("encode_history", torch.zeros(1, 1, encode_delay))
        self.register_buffer("decode_history", torch.zeros(1, 1, decode_delay))

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        if self.encode_history.shape[0] != x.shape[0]:
            self.encode_history = torch.zeros(x.shape[0], 1, self.encode_lag)
        joined = torch.cat([self.encode_history, x], dim=-1)
        self.encode_history = joined[..., joined.shape[-1] - self.encode_lag:]
        delayed = joined[..., :x.shape[-1]]
        frames = delayed.reshape(x.shape[0], x.shape[-1] // self.ratio, self.ratio)  # (batch, frames, R)
        return frames.transpose(1, 2).contiguous()  # (batch, R, frames)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        batch, frames = z.shape[0], z.shape[-1]
        audio = z[:, :self.ratio].transpose(1, 2).reshape(batch, 1, frames * self.ratio)
        if self.label_inlet:
            audio = audio * (1.0 + z[:, self.ratio:self.ratio + 1].repeat_interleave(self.ratio, dim=-1))
        if self.alternate_signs:
            signs = 1.0 - 2.0 * (torch.arange(audio.shape[-1]) % 2).to(audio.dtype)
            audio = audio * signs
        if self.decode_history.shape[0] != batch:
            self.decode_history = torch.zeros(batch, 1, self.decode_lag)
        joined = torch.cat([self.decode_history, audio], dim=-1)
        self.decode_history = joined[..., joined.shape[-1] - self.decode_lag:]
        return joined[..., :audio.shape[-1]]

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.jit.export
    def reset(self) -> None:
        self.encode_history = torch.zeros(1, 1, self.encode_lag)
        self.decode_history = torch.zeros(1, 1, self.decode_lag)


class PhaseScrambler(NNModel):
    """forward (1,1,1,1): y[n] = c[n] * x[n - delay], c a fixed random +-1 carrier; declares ``declared``.

    Multiplying by an independent random-sign carrier keeps |y| (the amplitude envelope) exactly but
    destroys the waveform correlation (like a model that regenerates its phase). The carrier is a
    table of prime period 4099 indexed by the absolute sample count, so streaming equals offline.
    ``ignore_input``: output the carrier alone (0.1 * c[n]): no envelope to align, not measurable.
    """

    def __init__(self, delay: int = 768, declared: int = 768, ignore_input: bool = False):
        super().__init__()
        self.delay = delay
        self.ignore_input = ignore_input
        self.register_method("forward", [1, 1, 1, 1], delay=declared)
        self.register_buffer("history", torch.zeros(1, 1, delay))
        self.register_buffer("position", torch.zeros(1, dtype=torch.int64))
        generator = torch.Generator().manual_seed(1234)
        self.register_buffer("carrier", torch.randint(0, 2, (4099,), generator=generator).float() * 2.0 - 1.0)

    def forward(self, x: Tensor) -> Tensor:
        if self.history.shape[0] != x.shape[0]:
            self.history = torch.zeros(x.shape[0], x.shape[1], self.delay)
        joined = torch.cat([self.history, x], dim=-1)
        self.history = joined[..., joined.shape[-1] - self.delay:]
        index = (self.position + torch.arange(x.shape[-1])) % self.carrier.shape[0]
        self.position = self.position + x.shape[-1]
        signs = self.carrier[index]
        if self.ignore_input:
            return 0.1 * signs.expand(x.shape).contiguous()
        return joined[..., :x.shape[-1]] * signs

    @torch.jit.export
    def reset(self) -> None:
        self.history = torch.zeros(1, 1, self.delay)
        self.position = torch.zeros(1, dtype=torch.int64)


def script(module: nn.Module) -> torch.jit.ScriptModule:
    return torch.jit.script(module)


def save(module: nn.Module, path) -> str:
    """Script ``module`` and save it as a .ts file; returns the path as str."""
    torch.jit.save(torch.jit.script(module), str(path))
    return str(path)


class Forever(NNModel):
    """forward (1,1,1,1): the identity for buffers up to 1024 samples; never returns for larger ones."""

    def __init__(self):
        super().__init__()
        self.register_method("forward", [1, 1, 1, 1])

    def forward(self, x: Tensor) -> Tensor:
        while x.shape[-1] > 1024:
            x = x + 0.0
        return x


class FrameVocoder(NNModel):
    """forward (1,1,1,1) working in frames of ``frame`` samples, like a spectral model: each output frame is one
    fixed noise frame scaled by the RMS of the input frame, then delayed by ``delay`` samples; declares
    ``declared``. ``encode`` (1,1,1,frame: the frames' RMS) and ``decode`` (1,frame,1,1: held) make ``frame`` the
    model's minimum buffer, so every call holds whole frames and streaming equals offline.

    Its waveform never resembles its input (noise, whatever comes in); its envelope does, to within a frame.
    """

    def __init__(self, frame: int = 512, delay: int = 768, declared: int = 768):
        super().__init__()
        self.frame = frame
        self.delay = delay
        self.register_method("forward", [1, 1, 1, 1], delay=declared)
        self.register_method("encode", [1, 1, 1, frame])
        self.register_method("decode", [1, frame, 1, 1])
        generator = torch.Generator().manual_seed(4321)
        carrier = torch.randn(frame, generator=generator)
        self.register_buffer("carrier", carrier / carrier.pow(2).mean().sqrt())
        self.register_buffer("history", torch.zeros(1, 1, delay))

    def frame_rms(self, x: Tensor) -> Tensor:
        """``(batch, 1, time)`` -> ``(batch, 1, time // frame)``: the RMS of each frame of inlet 0."""
        frames = x[:, :1].reshape(x.shape[0], 1, x.shape[-1] // self.frame, self.frame)
        return frames.pow(2).mean(-1).sqrt()

    def forward(self, x: Tensor) -> Tensor:
        batch, length = x.shape[0], x.shape[-1]
        audio = (self.frame_rms(x).unsqueeze(-1) * self.carrier).reshape(batch, 1, length)
        if self.history.shape[0] != batch:
            self.history = torch.zeros(batch, 1, self.delay)
        joined = torch.cat([self.history, audio], dim=-1)
        self.history = joined[..., joined.shape[-1] - self.delay:]
        return joined[..., :length]

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        return self.frame_rms(x)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        return z.repeat_interleave(self.frame, dim=-1)

    @torch.jit.export
    def reset(self) -> None:
        self.history = torch.zeros(1, 1, self.delay)

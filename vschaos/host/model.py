"""Load and describe nn~ TorchScript models the way nn~ / nn.ar read them (see docs/NN_CONTRACT.md).

A :class:`LoadedModel` wraps a ``torch.jit.ScriptModule`` and offers what a host needs: the
method table (``<m>_params``), labels, attributes with their type codes, typed ``set``/``get``,
calls with nn~'s shape check, and a state reset (``reset()`` if exported, else a reload).

With a ``call_timeout``, every call into the model's code (methods, getters, setters, ``reset``) runs under
that time limit (:mod:`.guard`) and a call that never returns raises :class:`ModelTimeoutError`.
"""
from __future__ import annotations

import io
import os
import stat
import time
import warnings
from typing import Any, Callable, List, Optional, Sequence, Union

import torch

from vschaos.util import next_power_of_two

from .description import (ATTRIBUTE_TYPE_NAMES, AttributeInfo, MethodInfo, ModelDescription, convert_attribute_values,
                          infer_attribute_type)
from .errors import AttributeValueError, ModelCallError, ModelLoadError, ModelTimeoutError
from .guard import CallGuard

# Attribute names a model may use to expose its sample rate (ours, RAVE, nn-tilde helper).
SAMPLE_RATE_ATTRIBUTES = ("sample_rate", "sampling_rate", "sr")

ModelSource = Union[str, os.PathLike, torch.jit.ScriptModule]
# Largest ``<method>_params`` values taken. A ratio above nn~'s largest buffer (65536) leaves no sample per call,
# and the host allocates (batch, channels, buffer) per inlet and outlet: a file claiming 2**40 would ask for TiB.
MAX_METHOD_RATIO = 1 << 16
MAX_METHOD_CHANNELS = 1 << 12


def not_regular_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be read as a file, or None for a regular file (a link to one included): a FIFO
    (opening it waits for a writer forever), a device (``/dev/zero`` never ends), a socket, a folder. Checked
    with ``stat``, which never blocks, before anything opens the path."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return str(error.strerror or error)
    if stat.S_ISREG(mode):
        return None
    kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    return f"it is {kind}, not a file"


def _as_list(value: object) -> List[object]:
    """Getter results come as tuple, list or (old exports) a bare scalar."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return [_plain(value)]


def _plain(value: object) -> object:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


class LoadedModel:
    """An nn~ model as a host sees it.

    Args:
        module: the scripted module (used as is: its state is the caller's).
        path: the file it came from, if any.
        source_bytes: serialised module, used by :meth:`fresh` and to reset state by reloading.
        call_timeout: seconds any one call into the model's code may take (``None``: no limit, the call runs
            in the caller's thread); copies made by :meth:`fresh` keep it.
    """

    def __init__(self, module: torch.jit.ScriptModule, path: Optional[str] = None,
                 source_bytes: Optional[bytes] = None, call_timeout: Optional[float] = None):
        self.module = module
        self.path = path
        self._source_bytes = source_bytes
        self.call_timeout = call_timeout
        self._guard = CallGuard(call_timeout) if call_timeout is not None else None
        self.last_call_seconds = 0.0  # how long the model's code ran in the last :meth:`call`
        self.description = self._describe()

    def _invoke(self, what: str, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)``, under the time limit if there is one (``what`` names the call in the error)."""
        if self._guard is None:
            return function(*args)
        return self._guard.run(what, function, *args)

    # ---- loading --------------------------------------------------------------------------
    def serialized(self) -> bytes:
        if self._source_bytes is None:
            buffer = io.BytesIO()
            with warnings.catch_warnings():  # an in-memory copy for fresh(): torch's notice would only confuse
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.save.*", category=FutureWarning)
                torch.jit.save(self.module, buffer)
            self._source_bytes = buffer.getvalue()
        return self._source_bytes

    def fresh(self) -> "LoadedModel":
        """A new, independent copy of the model as it was loaded (fresh state)."""
        module = _jit_load(io.BytesIO(self.serialized()))
        return LoadedModel(module, self.path, self._source_bytes, self.call_timeout)

    def reset_state(self) -> None:
        """Reset streaming state: ``reset()`` if exported, otherwise reload (as nn~'s ``reload``)."""
        if self.description.has_reset:
            self._invoke("reset()", self.module.reset)
        else:
            self.module = self.fresh().module

    def set_sample_rate(self, sample_rate: int) -> None:
        if self.description.has_set_sample_rate:
            self._invoke(f"set_sample_rate({int(sample_rate)})", self.module.set_sample_rate, int(sample_rate))

    # ---- description ----------------------------------------------------------------------
    def _script_methods(self) -> List[str]:
        try:
            return list(self.module._c._method_names())
        except AttributeError:
            return [name for name in dir(self.module) if callable(getattr(self.module, name, None))]

    def _has(self, name: str) -> bool:
        try:
            getattr(self.module, name)
            return True
        except (AttributeError, RuntimeError):
            return False

    def _method_names(self) -> List[str]:
        if self._has("get_methods"):
            try:
                return [str(n) for n in self._invoke("get_methods()", self.module.get_methods)]
            except ModelTimeoutError:
                raise
            except Exception:  # a broken get_methods (any error): fall back like nn~ does
                pass
        return [n for n in self._script_methods() if self._has(f"{n}_params")]

    def _read_method(self, name: str) -> MethodInfo:
        if not self._has(f"{name}_params"):
            raise ModelLoadError(f"method '{name}' is listed but has no '{name}_params' buffer")
        params = getattr(self.module, f"{name}_params")
        try:
            values = [int(v) for v in torch.as_tensor(params).flatten().tolist()]
        except (TypeError, ValueError) as error:
            raise ModelLoadError(f"'{name}_params' is not numeric: {error}") from None
        if len(values) != 4:
            raise ModelLoadError(f"'{name}_params' must hold 4 values [in_channels, in_ratio, out_channels, "
                                 f"out_ratio], got {values}")
        if min(values) < 1:
            raise ModelLoadError(f"'{name}_params' = {values}: channels and ratios must be >= 1")
        if max(values[0], values[2]) > MAX_METHOD_CHANNELS or max(values[1], values[3]) > MAX_METHOD_RATIO:
            raise ModelLoadError(f"'{name}_params' = {values}: channels must be <= {MAX_METHOD_CHANNELS} and ratios "
                                 f"<= {MAX_METHOD_RATIO} (nn~'s largest buffer)")
        if not self._has(name):
            raise ModelLoadError(f"method '{name}' is listed but the module has no such method")
        labels = {}
        for side in ("input", "output"):
            attr = f"{name}_{side}_labels"
            labels[side] = [str(v) for v in getattr(self.module, attr)] if self._has(attr) else []
        delay: Optional[int] = None
        if self._has(f"{name}_delay"):
            delay = int(torch.as_tensor(getattr(self.module, f"{name}_delay")).flatten()[0].item())
        return MethodInfo(name, values[0], values[1], values[2], values[3], labels["input"], labels["output"], delay)

    def _read_attributes(self) -> List[AttributeInfo]:
        if not self._has("get_attributes"):
            return []
        attributes: List[AttributeInfo] = []
        for name in [str(n) for n in self._invoke("get_attributes()", self.module.get_attributes)]:
            if name == "none":  # placeholder of old exports with no attribute
                continue
            value: Optional[List[object]] = None
            error: Optional[str] = None
            try:
                value = _as_list(self._invoke(f"get_{name}()", getattr(self.module, f"get_{name}")))
            except ModelTimeoutError:
                raise
            except Exception as exc:
                error = f"get_{name}() failed: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}"
            if self._has(f"{name}_params"):
                codes = [int(c) for c in torch.as_tensor(getattr(self.module, f"{name}_params")).flatten().tolist()]
                types = [ATTRIBUTE_TYPE_NAMES.get(c, f"unknown({c})") for c in codes]
                declared = True
            else:
                types = [infer_attribute_type(v) for v in (value or [])]
                declared = False
            attributes.append(AttributeInfo(name, types, value, declared, error))
        return attributes

    def _sample_rate(self) -> Optional[int]:
        for name in SAMPLE_RATE_ATTRIBUTES:
            if self._has(name):
                value = getattr(self.module, name)
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    value = value.item()
                if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                    return int(value)
        if self._has("get_sample_rate"):
            try:
                return int(_as_list(self._invoke("get_sample_rate()", self.module.get_sample_rate))[0])
            except ModelTimeoutError:
                raise
            except Exception:
                return None
        return None

    def _describe(self) -> ModelDescription:
        names = self._method_names()
        if not names:
            raise ModelLoadError(f"{self.path or 'module'}: no nn~ methods (no get_methods() and no '<m>_params' "
                                 "buffer): not an nn~ model")
        methods = [self._read_method(n) for n in names]
        min_buffer = next_power_of_two(max(m.max_ratio for m in methods))
        return ModelDescription(self.path, methods, self._read_attributes(), min_buffer, self._sample_rate(),
                                self._has("reset"), self._has("set_sample_rate"))

    # ---- attributes -----------------------------------------------------------------------
    def get_attribute(self, name: str) -> List[object]:
        self.description.attribute(name)
        try:
            return _as_list(self._invoke(f"get_{name}()", getattr(self.module, f"get_{name}")))
        except ModelTimeoutError:
            raise
        except Exception as error:
            raise AttributeValueError(f"get_{name}() raised: {_first_line(error)}") from None

    def set_attribute(self, name: str, values: Sequence[object]) -> None:
        """``set <name> v1 v2 ...`` as nn~ does it: typed conversion, count check, return code 0."""
        attribute = self.description.attribute(name)
        converted = convert_attribute_values(attribute, values)
        try:
            code = self._invoke(f"set_{name}{tuple(converted)}", getattr(self.module, f"set_{name}"), *converted)
        except ModelTimeoutError:
            raise
        except Exception as error:
            raise AttributeValueError(f"set_{name}{tuple(converted)} raised: {_first_line(error)}") from None
        if code is not None and int(code) != 0:
            raise AttributeValueError(f"set_{name}{tuple(converted)} refused by the model (returned {code})")

    # ---- calls ----------------------------------------------------------------------------
    def call(self, method: str, x: torch.Tensor) -> torch.Tensor:
        """Run ``method`` on ``x`` ``(batch, in_channels, B // in_ratio)``; check the output like a careful host.

        Returns float32 ``(batch, out_channels, B // out_ratio)``; raises :class:`ModelCallError` naming
        the method and the expected and actual shapes otherwise, :class:`ModelTimeoutError` naming the
        method, buffer size and batch for a call over the time limit. Sets :attr:`last_call_seconds`.
        """
        info = self.description.method(method)
        buffer_size = x.shape[-1] * info.in_ratio
        start = time.perf_counter()
        try:
            if self._guard is None:
                y = self._run_method(method, x)
            else:
                y = self._guard.run(f"method '{method}' (buffer {buffer_size}, batch {x.shape[0]})",
                                    self._run_method, method, x)
        except ModelTimeoutError:
            raise
        except Exception as error:
            raise ModelCallError(f"method '{method}' raised on input {tuple(x.shape)}: {_first_line(error)}") from None
        self.last_call_seconds = self._guard.last_seconds if self._guard else time.perf_counter() - start
        expected = (x.shape[0], info.out_channels, buffer_size // info.out_ratio)
        if not isinstance(y, torch.Tensor):
            raise ModelCallError(f"method '{method}' returned {type(y).__name__}, expected a tensor {expected}")
        if tuple(y.shape) != expected:
            raise ModelCallError(f"method '{method}', buffer {buffer_size}, batch {x.shape[0]}: output shape "
                                 f"{tuple(y.shape)}, expected {expected}")
        if y.dtype != torch.float32:
            raise ModelCallError(f"method '{method}', buffer {buffer_size}: output dtype {y.dtype}, expected float32")
        return y

    def _run_method(self, method: str, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return getattr(self.module, method)(x)


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    # TorchScript errors put the Python-side message last ("RuntimeError: ..."); prefer it.
    for line in reversed(lines):
        if "Error:" in line or "Exception:" in line:
            return line.strip()
    return lines[0].strip() if lines else type(error).__name__


def _jit_load(data: io.BytesIO) -> torch.jit.ScriptModule:
    """``torch.jit.load`` + ``eval`` as nn~ does, without recent torch's deprecation notice:
    TorchScript is what nn~'s libtorch loads, so the notice is noise to a host user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
        return torch.jit.load(data, map_location="cpu").eval()


def load_model(source: ModelSource, sample_rate: Optional[int] = None,
               call_timeout: Optional[float] = None) -> LoadedModel:
    """Load a ``.ts`` path (``torch.jit.load`` + ``eval``) or wrap an already-loaded ScriptModule.

    If ``sample_rate`` is given and the model has ``set_sample_rate``, it is called (as nn~ does).
    ``call_timeout``: see :class:`LoadedModel`.
    """
    if isinstance(source, torch.jit.ScriptModule):
        loaded = LoadedModel(source.eval(), call_timeout=call_timeout)
    elif isinstance(source, torch.nn.Module):
        raise ModelLoadError("got a plain nn.Module: script it first (torch.jit.script) as nn~ needs TorchScript")
    else:
        path = os.fspath(source)
        if not os.path.exists(path):
            raise ModelLoadError(f"model file not found: {path}")
        if os.path.isdir(path):
            raise ModelLoadError(f"{path} is a directory, expected a TorchScript .ts file")
        problem = not_regular_problem(path)  # a FIFO or /dev/zero named x.ts would block or never end
        if problem is not None:
            raise ModelLoadError(f"{path}: {problem}, expected a TorchScript .ts file")
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            module = _jit_load(io.BytesIO(data))
        except Exception as error:
            raise ModelLoadError(f"{path} is not a TorchScript file ({_first_line(error)[:120]})") from None
        loaded = LoadedModel(module, path, data, call_timeout)
    if sample_rate is not None:
        loaded.set_sample_rate(sample_rate)
    return loaded


def describe_model(source: Union[ModelSource, LoadedModel]) -> ModelDescription:
    """Describe a model (path, ScriptModule or :class:`LoadedModel`)."""
    if isinstance(source, LoadedModel):
        return source.description
    return load_model(source).description

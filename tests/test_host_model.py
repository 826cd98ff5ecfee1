"""Loading, describing and attributes of nn~ models."""
import pytest
import yaml

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

from host_models import AttributeModel, Gain, OldStyle, RMSCodec, DelayLine, save, script  # noqa: E402
from vschaos.host import (AttributeValueError, ModelLoadError, describe_model, load_model)  # noqa: E402


def test_describe_methods_labels_delay_and_buffer(tmp_path):
    path = save(RMSCodec(), tmp_path / "codec.ts")
    description = describe_model(path)
    encode, decode = description.method("encode"), description.method("decode")
    assert (encode.in_channels, encode.in_ratio, encode.out_channels, encode.out_ratio) == (1, 1, 4, 512)
    assert (decode.in_channels, decode.in_ratio, decode.out_channels, decode.out_ratio) == (4, 512, 1, 1)
    assert description.min_buffer_size == 512 and description.path == path
    text = description.format()
    assert "encode: 1 ins (ratio 1), 4 outs (ratio 512)" in text and "decode: 4 ins (ratio 512)" in text
    gain = describe_model(script(Gain()))
    assert gain.method("forward").input_labels == ["(signal) input"]
    assert gain.attributes[0].name == "gain" and gain.attributes[0].value == [0.5]
    assert describe_model(script(DelayLine(10, 12))).method("forward").delay == 12


def test_nnar_yaml():
    data = yaml.safe_load(describe_model(script(RMSCodec())).to_nnar_yaml(idx=3))
    assert data["idx"] == 3 and data["minBufferSize"] == 512
    assert data["methods"][0] == {"name": "encode", "inDim": 1, "inRatio": 1, "outDim": 4, "outRatio": 512}
    assert data["attributes"] == []


def test_old_style_export_is_understood():
    description = describe_model(script(OldStyle()))
    assert [m.name for m in description.methods] == ["forward", "decode"]  # found through <m>_params
    assert description.method("decode").in_ratio == 256  # float params read as int
    assert [a.name for a in description.attributes] == ["volume"]  # "none" skipped
    assert description.attributes[0].value == [0.25] and description.attributes[0].types == ["float"]
    assert not description.attributes[0].types_declared


def test_attribute_round_trip_and_typed_conversion():
    model = load_model(script(AttributeModel()))
    model.set_attribute("muted", ["0.000000"])  # Pd's text for a false bool
    assert model.get_attribute("muted") == [False]
    model.set_attribute("muted", ["1.000000"])
    assert model.get_attribute("muted") == [True]
    model.set_attribute("steps", ["5.000000"])
    assert model.get_attribute("steps") == [5]
    model.set_attribute("range", ["-1", "2.5"])
    assert model.get_attribute("range") == [-1.0, 2.5]
    model.set_attribute("mode", ["dirty"])
    assert model.get_attribute("mode") == ["dirty"]


@pytest.mark.parametrize("name, values, message", [
    ("steps", ["2.5"], "expected int"),
    ("steps", ["three"], "expected int"),
    ("muted", ["maybe"], "expected bool"),
    ("range", ["1"], "takes 2 value"),
    ("gain", ["1", "2"], "takes 1 value"),
    ("mode", ["loud"], "refused by the model"),
    ("steps", ["-1"], "refused by the model"),
    ("nope", ["1"], "unknown attribute 'nope'"),
])
def test_bad_set_is_rejected(name, values, message):
    with pytest.raises(AttributeValueError, match=message):
        load_model(script(AttributeModel())).set_attribute(name, values)


def test_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "missing.ts")
    (tmp_path / "text.ts").write_text("hello")
    with pytest.raises(ModelLoadError, match="not a TorchScript file"):
        load_model(tmp_path / "text.ts")
    import torch

    class Empty(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(ModelLoadError, match="no nn~ methods"):
        load_model(torch.jit.script(Empty()))

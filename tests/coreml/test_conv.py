import pytest
from onnx import helper as h

from edgepack.errors import UnsupportedOpsError
from edgepack.targets.coreml.convert import preflight

from .harness import assert_converts, make, op_types, weight


@pytest.mark.parametrize("cin,cout,group,k,attrs", [
    (3, 8, 1, 3, dict(pads=[1, 1, 1, 1])),
    (3, 8, 1, 3, dict(strides=[2, 2])),
    (3, 8, 1, 3, dict(pads=[0, 1, 2, 1], strides=[2, 1])),
    (4, 8, 1, 3, dict(dilations=[2, 2], pads=[2, 2, 2, 2])),
    (4, 8, 1, 3, dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    (4, 8, 1, 3, dict(auto_pad="SAME_LOWER", strides=[2, 2])),
    (4, 8, 1, 3, dict(auto_pad="VALID")),
    (8, 8, 8, 3, dict(pads=[1, 1, 1, 1])),                     # depthwise
    (8, 16, 8, 3, dict(pads=[1, 1, 1, 1], strides=[2, 2])),    # depthwise, multiplier 2
    (6, 9, 3, 3, dict(pads=[1, 1, 1, 1])),                     # grouped
])
@pytest.mark.parametrize("operands", ["init", "input"])
def test_conv2d(cin, cout, group, k, attrs, operands):
    inits = [weight("W", (cout, cin // group, k, k)), weight("B", (cout,), 1)]
    inputs = {"x": [1, cin, 11, 12]}
    if operands == "input":      # weights and bias computed at run time (graph inputs)
        inputs.update(W=[cout, cin // group, k, k], B=[cout])
        inits = []
    m = make([h.make_node("Conv", ["x", "W", "B"], ["y"], group=group, **attrs)], inputs, ["y"], inits)
    if operands == "input" and "dilations" in attrs:
        with pytest.raises(UnsupportedOpsError, match="dilated convolution with weights computed at run time"):
            preflight(m)
        return
    # fp16 on the plain cases: each precision is a conversion (coremltools' passes take ~0.4 s)
    prog = assert_converts(m, precisions=("fp32", "fp16") if operands == "init" and group == 1 else ("fp32",))
    assert op_types(prog).get("conv") == 1


@pytest.mark.parametrize("shape,w,attrs", [
    ([2, 4, 20], (6, 4, 3), dict(pads=[1, 2], strides=[2])),
    ([1, 2, 5, 6, 7], (4, 2, 3, 3, 3), dict(pads=[1, 1, 1, 1, 1, 1])),
])
def test_conv_1d_3d(shape, w, attrs):
    m = make([h.make_node("Conv", ["x", "W"], ["y"], **attrs)], {"x": shape}, ["y"], [weight("W", w)])
    assert_converts(m)


@pytest.mark.parametrize("attrs,group", [
    (dict(strides=[2, 2]), 1),
    (dict(strides=[2, 2], pads=[1, 1, 1, 1]), 1),
    (dict(strides=[2, 2], pads=[0, 0, 1, 1], output_padding=[1, 1]), 1),
    (dict(strides=[3, 2], output_shape=[14, 10]), 1),
    (dict(dilations=[2, 2]), 1),
    (dict(strides=[2, 2], auto_pad="SAME_UPPER"), 1),
    (dict(strides=[2, 2], pads=[1, 1, 1, 1]), 2),
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose(attrs, group, bias):
    inits = [weight("W", (4, 6 // group, 3, 3))] + ([weight("B", (6,), 1)] if bias else [])
    m = make([h.make_node("ConvTranspose", ["x", "W"] + (["B"] if bias else []), ["y"], group=group, **attrs)],
             {"x": [1, 4, 5, 4]}, ["y"], inits)
    assert_converts(m, precisions=("fp32", "fp16") if bias else ("fp32",))


def test_conv_weights_summed_at_run_time_match():
    """A conv whose weight comes from another op (not an initializer) converts and matches."""
    nodes = [h.make_node("Mul", ["W", "s"], ["W2"]), h.make_node("Conv", ["x", "W2"], ["y"], pads=[1, 1, 1, 1])]
    m = make(nodes, {"x": [1, 3, 6, 6], "s": [1]}, ["y"], [weight("W", (4, 3, 3, 3))])
    assert_converts(m, seeds=(0,))

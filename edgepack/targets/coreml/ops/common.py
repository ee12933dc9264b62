"""Small helpers shared by converters."""
import numpy as np
from coremltools.converters.mil import Builder as mb

AUTO_PAD = {"SAME_UPPER": "same", "SAME_LOWER": "same_lower", "VALID": "valid"}


def text(value, default: str = "") -> str:
    """An ONNX string attribute (bytes) as str."""
    if value is None:
        return default
    return value.decode() if isinstance(value, bytes) else str(value)


def mil_pads(onnx_pads, spatial: int) -> list[int]:
    """ONNX [b1, b2, ..., e1, e2, ...] -> MIL [b1, e1, b2, e2, ...]."""
    p = list(onnx_pads) if onnx_pads else [0] * (2 * spatial)
    return [int(v) for pair in zip(p[:spatial], p[spatial:]) for v in pair]


def pad_type(attrs, spatial: int) -> dict:
    """MIL pad_type/pad keywords for an ONNX auto_pad/pads pair."""
    auto = text(attrs.get("auto_pad"), "NOTSET")
    if auto in AUTO_PAD:
        return {"pad_type": AUTO_PAD[auto]}
    return {"pad_type": "custom", "pad": np.array(mil_pads(attrs.get("pads"), spatial), np.int32)}


def channel_vector(v, rank: int):
    """A per-channel (C,) constant shaped to broadcast against an N C ... tensor of ``rank``."""
    return np.asarray(v, np.float32).reshape((-1,) + (1,) * (rank - 2))


def add_channel_bias(ctx, y, bias_name: str, rank: int, name: str):
    b = ctx.const(bias_name)
    if b is not None:
        return mb.add(x=y, y=channel_vector(b, rank), name=name)
    b = mb.reshape(x=ctx.x(bias_name), shape=np.array([-1] + [1] * (rank - 2), np.int32), name=name + "__b")
    return mb.add(x=y, y=b, name=name)

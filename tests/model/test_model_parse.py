"""parse_input_shape: the NAME=D1,D2 syntax and its error messages."""
from __future__ import annotations

import pytest

from edgepack.errors import ModelError
from edgepack.model import parse_input_shape


@pytest.mark.parametrize("text, name, dims", [
    ("data_0=1,3,224,224", "data_0", [1, 3, 224, 224]),
    ("serving_default_input_2:0=1,43844,1", "serving_default_input_2:0", [1, 43844, 1]),
    ("gpu_0/data_0=2,3,8,8", "gpu_0/data_0", [2, 3, 8, 8]),
    ("onnx::Flatten_0=1,16,96", "onnx::Flatten_0", [1, 16, 96]),
    ("a.b=7", "a.b", [7]),
    ("x=y=1,2", "x=y", [1, 2]),
    ("  x = 1, 2 ", "x", [1, 2]),
])
def test_parses(text, name, dims):
    assert parse_input_shape(text) == (name, dims)


@pytest.mark.parametrize("text, words", [
    ("data_0", "no '='"),
    ("=1,2", "no input name"),
    ("x=", "no dimensions"),
    ("x=  ", "no dimensions"),
    ("x=1,,3", "'' is not a positive integer"),
    ("x=1,3,", "'' is not a positive integer"),
    ("x=0,3", "'0' is not a positive integer"),
    ("x=-1,3", "'-1' is not a positive integer"),
    ("x=1.5", "'1.5' is not a positive integer"),
    ("x=N,3", "'N' is not a positive integer"),
    ("x=1x3", "'1x3' is not a positive integer"),
    ("x=\u00b2", "is not a positive integer"),
])
def test_rejects(text, words):
    with pytest.raises(ModelError) as info:
        parse_input_shape(text)
    message = str(info.value)
    assert words in message and "NAME=D1,D2" in message and "\n" not in message

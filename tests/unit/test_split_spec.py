"""The one split grammar (verifier.embed.parse_split / make_embedding), used by `verifier embed` and the
certificate producer."""

from __future__ import annotations

import re

import numpy as np
import pytest

import verifier
from verifier.embed import MAX_ZERO_UNITS, add_zero_neuron, channel_split, make_embedding, neuron_split, parse_split
from verifier.errors import SpecError


def test_forms_and_aliases():
    assert parse_split("layer=1,neuron=3,ratios=3/5,4/5") == {"layer": 1, "neuron": 3, "ratios": ["3/5", "4/5"]}
    assert parse_split("layer=fc1, zero=2") == parse_split("layer=fc1,count=2", "zero") == {"layer": "fc1", "count": 2}
    assert parse_split("layer=2,unit=0,in=1/2,1/2,out=1,1", "split") == \
        {"layer": 2, "neuron": 0, "in_ratios": ["1/2", "1/2"], "out_ratios": ["1", "1"]}
    assert parse_split("layer=1,channel=0,ratios=1/sqrt(2),1/sqrt(2)")["channel"] == 0


@pytest.mark.parametrize("text, kind, msg", [
    ("neuron=3,ratios=3/5,4/5", None, "lacks layer (required)"),
    ("layer=1,ratios=1", None, "lacks neuron=J, channel=C or count=K"),
    ("layer=1,neuron=0,channel=0,ratios=1", None, "names neuron and channel"),
    ("layer=1,neuron=0", None, "lacks ratios"),
    ("layer=1,count=2,ratios=1", None, "takes no ratios"),
    ("layer=1,count=0", None, "count=0 must be a positive integer"),
    (f"layer=1,count={MAX_ZERO_UNITS + 1}", None, f"<= {MAX_ZERO_UNITS}"),
    ("layer=1,neuron=-1,ratios=1", None, "neuron=-1 must be an integer >= 0"),
    ("layer=1,neuron=1" + "0" * 5000 + ",ratios=1", None, "must be an integer >= 0"),
    ("layer=1,neuron=0,ratios=1", "channel", "unknown key 'neuron'"),
    ("layer=1,,neuron=0", None, "empty item"),
    ("layer=1,neuron=0,neuron=1,ratios=1", None, "given twice"),
    ("", None, "is empty"),
])
def test_errors_are_one_line_and_name_the_key(text, kind, msg):
    with pytest.raises(SpecError, match=re.escape(msg)) as e:
        parse_split(text, kind)
    assert "\n" not in str(e.value) and str(e.value).startswith("split ")


def test_make_embedding_builds_what_the_direct_calls_build():
    """Oracle: the same map from the builder functions called directly (exact entries compared)."""
    net = verifier.mlp([2, 3, 2])
    p = net.init_params(0)
    cases = [
        ("layer=1,neuron=2,ratios=3/5,4/5", neuron_split(net, p, 1, 2, ["3/5", "4/5"])),
        ("layer=1,count=2", add_zero_neuron(net, p, 1, 2)),
        ("layer=1,neuron=0,in_ratios=1/2,1/2,out_ratios=1,1",
         neuron_split(net, p, 1, 0, in_ratios=["1/2", "1/2"], out_ratios=["1", "1"])),
    ]
    for text, direct in cases:
        e = make_embedding(net, p, text)
        assert e.shape == direct.shape and sorted(e.entries()) == sorted(direct.entries())
        assert all(np.array_equal(e.wide_params[k], direct.wide_params[k]) for k in direct.wide_params)
    cnn = verifier.cnn((1, 4, 4), [2])
    e = make_embedding(cnn, None, "layer=1,channel=1,ratios=1/3,2/3,2/3")
    assert sorted(e.entries()) == sorted(channel_split(cnn, None, 1, 1, ["1/3", "2/3", "2/3"]).entries())

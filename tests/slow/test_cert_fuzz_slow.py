"""The certificate fuzz suite's long profile (``make test-slow``): the same properties as
``tests/unit/test_cert_fuzz.py`` with 25x the examples and random (not derandomized) seeds."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_cert_fuzz import (FAST, assert_cli_ok, check_once, fresh, make_bases, mutate, mutate_npz,
                                       reseal)

pytestmark = pytest.mark.slow
SCALE = 25


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return make_bases(tmp_path_factory.mktemp("fuzz_slow"))


@pytest.mark.parametrize("which", ["kkt", "ext", "emb"])
@settings(max_examples=FAST["json"] * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_json_mutations_long(bases, tmp_path_factory, which, data):
    d, folder = fresh(bases, which, tmp_path_factory.mktemp("m"))
    what = "; ".join(mutate(data, d) for _ in range(data.draw(st.integers(1, 4))))
    reseal(d, folder)
    check_once(d, folder, what)


@settings(max_examples=FAST["npz"] * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_npz_mutations_long(bases, tmp_path_factory, data):
    d, folder = fresh(bases, "ext", tmp_path_factory.mktemp("n"))
    f = folder / data.draw(st.sampled_from([d["params"]["path"], d["data"]["path"]]))
    what = mutate_npz(data, f)
    if data.draw(st.booleans()):
        what += "; " + mutate(data, d)
    reseal(d, folder)
    check_once(d, folder, what)


@settings(max_examples=FAST["subprocess"] * 10, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_cli_under_resource_limits_long(bases, tmp_path_factory, data):
    d, folder = fresh(bases, data.draw(st.sampled_from(["kkt", "ext", "emb"])), tmp_path_factory.mktemp("s"))
    what = "; ".join(mutate(data, d) for _ in range(data.draw(st.integers(1, 3))))
    reseal(d, folder)
    path = folder / "mutant.json"
    path.write_text(json.dumps(d))
    assert_cli_ok(path, what)

"""Property: whatever a user writes, `validate` answers 0 or 2 and names the file; never a traceback."""

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_helpers import gpufleet
from conftest import EXAMPLES

BASE = yaml.safe_load((EXAMPLES / "small.yaml").read_text())

junk = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**40, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["2026-13-45", "GB999", "-1", "H100:0", "∞", "1e309"]),
)


def paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from paths(v, prefix + (i,))


ALL_PATHS = list(paths(BASE))


@st.composite
def broken_docs(draw):
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = doc
        try:
            for p in path[:-1]:
                parent = parent[p]
            key = path[-1]
            parent[key]  # still there after earlier mutations?
        except (KeyError, IndexError, TypeError):
            continue
        if draw(st.booleans()):
            parent[key] = draw(junk)
        elif isinstance(parent, dict):
            del parent[key]
        else:
            parent.append(copy.deepcopy(parent[key]))
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=broken_docs())
def test_mutated_scenarios_never_crash(tmp_path, doc):
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    r = gpufleet("validate", str(path))
    assert r.code in (0, 2)
    if r.code == 2:
        assert str(path) in r.err
        assert "Traceback" not in r.err


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300), cut=st.integers(0, 4000))
def test_arbitrary_text_never_crashes(tmp_path, text, cut):
    original = (EXAMPLES / "small.yaml").read_text()
    path = tmp_path / "text.yaml"
    path.write_text(original[:cut] + text, encoding="utf-8", errors="surrogatepass")
    r = gpufleet("validate", str(path))
    assert r.code in (0, 2)
    if r.code == 2:
        assert str(path) in r.err

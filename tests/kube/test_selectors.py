"""Label selector strings from the config: parsing, matching, and clear errors."""

from __future__ import annotations

import pytest

from coredumps.errors import ConfigError
from coredumps.kube.selectors import matches_any, parse, parse_all

HELM_POD = {"app.kubernetes.io/name": "milvus", "app.kubernetes.io/instance": "my-release", "component": "standalone"}
CHART = {"helm.sh/chart": "milvus-4.1.0"}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app.kubernetes.io/name=milvus", HELM_POD, True),
    ("app.kubernetes.io/name==milvus", HELM_POD, True),
    ("app.kubernetes.io/name=etcd", HELM_POD, False),
    ("app.kubernetes.io/name!=etcd", HELM_POD, True),
    ("tier!=db", HELM_POD, True),
    ("component in (standalone, proxy)", HELM_POD, True),
    ("component in (proxy)", HELM_POD, False),
    ("component notin (proxy)", HELM_POD, True),
    ("missing notin (x)", HELM_POD, True),
    ("missing in (x)", HELM_POD, False),
    ("milvus.io/instance", HELM_POD, False),
    ("app.kubernetes.io/instance", HELM_POD, True),
    ("!milvus.io/instance", HELM_POD, True),
    ("app.kubernetes.io/name=milvus,component=proxy", HELM_POD, False),
    ("app.kubernetes.io/name=milvus, component in (standalone)", HELM_POD, True),
    ("helm.sh/chart=milvus", CHART, True),
    ("helm.sh/chart=milvus-4.1.0", CHART, True),
    ("helm.sh/chart=milvus", {"helm.sh/chart": "milvus-operator-1.0.0"}, False),
    ("helm.sh/chart!=milvus", CHART, False),
    ("app=milvus", {"app": "milvus-4"}, False),
    ("empty=", {"empty": ""}, True),
])
def test_selector_matches_labels(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse(selector).matches(labels) is expected


@pytest.mark.parametrize("selector", [
    "", "   ", "a=b,", "=value", "key=bad value", "key in ()", "key in (a,)", "key in a,b", "Bad_Prefix/key",
    "key=" + "x" * 64,
])
def test_malformed_selector_is_a_config_error(selector: str) -> None:
    with pytest.raises(ConfigError, match="selector"):
        parse(selector)


@pytest.mark.parametrize(("selector", "text"), [
    ("a==b", "a=b"),
    ("a != b", "a!=b"),
    ("k in (y, x)", "k in (x,y)"),
    ("!k,j", "!k,j"),
])
def test_selector_prints_for_the_api_server(selector: str, text: str) -> None:
    assert str(parse(selector)) == text


def test_a_list_of_selectors_matches_any_of_them() -> None:
    selectors = parse_all(["app.kubernetes.io/managed-by=milvus-operator", "milvus.io/instance"])
    assert matches_any(selectors, {"milvus.io/instance": "x"})
    assert matches_any(selectors, {"app.kubernetes.io/managed-by": "milvus-operator"})
    assert not matches_any(selectors, HELM_POD)
    assert not matches_any(selectors, None)
    assert not matches_any((), HELM_POD)

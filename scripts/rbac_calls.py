"""The RBAC rules the code needs, derived from the Kubernetes API calls in coredumps/kube/client.py.

    .venv/bin/python scripts/rbac_calls.py        # prints the rules as ClusterRole YAML

Every ``self.<api>.<method>`` the client module names (called directly or handed to ``self._call``) is
looked up in the installed ``kubernetes`` client: its HTTP method and resource path give the API group,
the resource (with its subresource, e.g. ``pods/log``) and the verb. A custom-object call takes its group
and plural from the call's arguments, resolved through the module's string constants. A call made in a
function that passes ``watch=True`` is a ``watch``, not a ``list``.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CLIENT_MODULE = Path(__file__).resolve().parent.parent / "coredumps" / "kube" / "client.py"
READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True, order=True)
class Permission:
    group: str
    resource: str
    verb: str


@dataclass(frozen=True)
class Call:
    api_class: str
    method: str
    args: tuple[ast.expr, ...]
    watch: bool


def _constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        names = [t for t in targets if isinstance(t, ast.Name)]
        names += [e for t in targets if isinstance(t, ast.Tuple) for e in t.elts if isinstance(e, ast.Name)]
        values = value.elts if isinstance(value, ast.Tuple) else [value]
        if len(names) == len(values):
            for name, val in zip(names, values, strict=True):
                if isinstance(val, ast.Constant) and isinstance(val.value, str):
                    out[name.id] = val.value
    return out


def _api_attributes(tree: ast.Module) -> dict[str, str]:
    """``self.<attr> = k8s.<ApiClass>(...)`` -> {attr: ApiClass}."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            func = node.value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if not name.endswith("Api"):
                continue
            for target in node.targets:
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                        and target.value.id == "self":
                    out[target.attr] = name
    return out


def _passes_watch(function: ast.AST) -> bool:
    for node in ast.walk(function):
        if isinstance(node, ast.keyword) and node.arg == "watch" and _is_true(node.value):
            return True
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "watch" and _is_true(value):
                    return True
    return False


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def calls(source: str) -> Iterator[Call]:
    """Every Kubernetes API method the module references, with the positional arguments it is given."""
    tree = ast.parse(source)
    apis = _api_attributes(tree)
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        watch = _passes_watch(function)
        for node in ast.walk(function):
            if not isinstance(node, ast.Call):
                continue
            candidates = [(node.func, list(node.args))]
            candidates += [(arg, node.args[i + 1:]) for i, arg in enumerate(node.args)]
            for expr, rest in candidates:
                found = _api_method(expr, apis)
                if found is not None:
                    yield Call(found[0], found[1], tuple(rest), watch)
        for node in ast.walk(function):
            if isinstance(node, ast.Dict):
                for value in node.values:
                    found = _api_method(value, apis) if value is not None else None
                    if found is not None:
                        yield Call(found[0], found[1], (), watch)
            elif isinstance(node, ast.IfExp):
                for branch in (node.body, node.orelse):
                    found = _api_method(branch, apis)
                    if found is not None:
                        yield from _assigned_call(function, node, found, apis, watch)


def _assigned_call(function: ast.AST, ifexp: ast.IfExp, found: tuple[str, str], apis: dict[str, str],
                   watch: bool) -> Iterator[Call]:
    """``fn = self._apps.a if ... else self._apps.b`` then ``self._call(what, fn, ...)``."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and node.value is ifexp:
            names = {t.id for t in node.targets if isinstance(t, ast.Name)}
            for call in ast.walk(function):
                if isinstance(call, ast.Call):
                    for i, arg in enumerate(call.args):
                        if isinstance(arg, ast.Name) and arg.id in names:
                            yield Call(found[0], found[1], tuple(call.args[i + 1:]), watch)


def _api_method(expr: ast.expr, apis: dict[str, str]) -> tuple[str, str] | None:
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Attribute) \
            and isinstance(expr.value.value, ast.Name) and expr.value.value.id == "self" \
            and expr.value.attr in apis:
        return apis[expr.value.attr], expr.attr
    return None


def _endpoint(api_class: str, method: str) -> tuple[str, str, list[str]]:
    """(HTTP method, resource path, parameter names) of a kubernetes client method."""
    from kubernetes import client as k8s

    cls = getattr(k8s, api_class)
    serializer = getattr(cls, f"_{method}_serialize", None)
    if serializer is None:
        raise LookupError(f"{api_class}.{method} is not a method of the installed kubernetes client")
    text = inspect.getsource(serializer)
    match = re.search(r"method='([A-Z]+)',\s*resource_path='([^']+)'", text)
    if match is None:
        raise LookupError(f"cannot find the endpoint of {api_class}.{method}")
    params = [p for p in inspect.signature(getattr(cls, method)).parameters if p != "self"]
    return match.group(1), match.group(2), params


def _permissions(call: Call, constants: dict[str, str]) -> set[Permission]:
    http, path, params = _endpoint(call.api_class, call.method)
    values: dict[str, str] = {}
    for name, arg in zip(params, call.args, strict=False):
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            values[name] = arg.value
        elif isinstance(arg, ast.Name) and arg.id in constants:
            values[name] = constants[arg.id]
    for placeholder in ("group", "plural"):
        if "{" + placeholder + "}" in path:
            if placeholder not in values:
                raise LookupError(f"{call.method}: cannot resolve its {placeholder} argument to a constant")
            path = path.replace("{" + placeholder + "}", values[placeholder])
    parts = [p for p in path.strip("/").split("/") if p]
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    resource, named, sub = rest[0], len(rest) > 1 and rest[1] == "{name}", rest[2:]
    full = resource + ("/" + "/".join(sub) if sub else "")
    verb = {
        ("GET", True): "get", ("GET", False): "list", ("POST", False): "create", ("POST", True): "create",
        ("PUT", True): "update", ("PATCH", True): "patch", ("DELETE", True): "delete",
        ("DELETE", False): "deletecollection",
    }[(http, named)]
    if verb == "list" and call.watch:
        verb = "watch"
    return {Permission(group, full, verb)}


def derive(path: Path = CLIENT_MODULE) -> set[Permission]:
    """The (apiGroup, resource, verb) triples the module's calls need."""
    source = path.read_text()
    constants = _constants(ast.parse(source))
    out: set[Permission] = set()
    for call in calls(source):
        out |= _permissions(call, constants)
    return out


def rules(permissions: set[Permission]) -> list[dict[str, list[str]]]:
    """Kubernetes PolicyRules: one per (group, resource), verbs sorted."""
    grouped: dict[tuple[str, str], set[str]] = {}
    for p in permissions:
        grouped.setdefault((p.group, p.resource), set()).add(p.verb)
    return [{"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
            for (group, resource), verbs in sorted(grouped.items())]


def permissions_of(policy_rules: list[dict[str, list[str]]]) -> set[Permission]:
    """The triples a list of PolicyRules grants (no wildcards expected)."""
    return {Permission(g, r, v) for rule in policy_rules for g in rule.get("apiGroups", [])
            for r in rule.get("resources", []) for v in rule.get("verbs", [])}


def main() -> int:
    import yaml

    derived = derive()
    observe = {p for p in derived if p.verb in READ_VERBS and p.resource != "secrets"}
    act = derived - observe
    for name, part in (("coredump-agent-observe", observe), ("coredump-agent-act", act)):
        sys.stdout.write(f"# {name}\n" + yaml.safe_dump({"rules": rules(part)}, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

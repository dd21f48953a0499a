"""What can be checked of the image without a Docker engine: its inputs, install, tools and entrypoint."""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass

import yaml

from tests.conftest import REPO
from tests.deploy.conftest import DEPLOY, OVERLAYS, build, containers

DOCKERFILE = REPO / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@dataclass
class Instruction:
    stage: int
    keyword: str
    args: str


def _instructions() -> list[Instruction]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: list[Instruction] = []
    stage = -1
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(stage, keyword, args.strip()))
    return out


INSTRUCTIONS = _instructions()
FINAL = max(i.stage for i in INSTRUCTIONS)


def _ignored(path: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip()]
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) or fnmatch.fnmatch(prefix, pattern)
               for pattern in patterns for prefix in prefixes)


def _copies() -> list[str]:
    sources = []
    for ins in INSTRUCTIONS:
        if ins.keyword == "COPY" and "--from=" not in ins.args:
            words = shlex.split(ins.args)
            sources += [w for w in words[:-1] if not w.startswith("--")]
    return sources


def test_every_path_the_image_copies_exists_and_is_not_dockerignored() -> None:
    sources = _copies()
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path in the repo"
        assert not _ignored(source), f"COPY {source}: excluded by .dockerignore"


def test_the_image_holds_every_package_the_project_installs() -> None:
    copied = {s.rstrip("/") for s in _copies()}
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages and packages <= copied, f"not copied: {sorted(packages - copied)}"
    assert {"pyproject.toml", PYPROJECT["project"]["readme"], "scripts", "configs", "prefect.yaml"} <= copied


def test_it_installs_with_the_readme_s_setup_script() -> None:
    runs = [ins.args for ins in INSTRUCTIONS if ins.keyword == "RUN" and ins.stage == 0]
    assert runs == ["bash scripts/setup.sh"]
    quickstart = (REPO / "scripts" / "quickstart.sh").read_text()
    assert "bash scripts/setup.sh" in quickstart, "the README's first command installs through the same script"
    assert "bash scripts/quickstart.sh" in (REPO / "README.md").read_text()
    workdir = [ins.args for ins in INSTRUCTIONS if ins.keyword == "WORKDIR" and ins.stage == 0]
    assert workdir == ["/app"]
    assert any(ins.keyword == "COPY" and ins.args == "--from=build /app /app" for ins in INSTRUCTIONS)


def test_the_entrypoint_is_the_console_script_of_the_setup_venv() -> None:
    (entrypoint,) = [ins.args for ins in INSTRUCTIONS if ins.keyword == "ENTRYPOINT"]
    assert yaml.safe_load(entrypoint) == ["/app/.venv/bin/coredump-agent"]
    assert "coredump-agent" in PYPROJECT["project"]["scripts"]
    assert "-m venv .venv" in (REPO / "scripts" / "setup.sh").read_text()


def test_the_final_image_has_the_tools_and_runs_as_the_manifests_user() -> None:
    final_runs = " ".join(ins.args for ins in INSTRUCTIONS if ins.keyword == "RUN" and ins.stage == FINAL)
    for package in ("gdb", "zstd", "lz4", "xz-utils"):
        assert re.search(rf"\b{package}\b", final_runs), package
    (user,) = [ins.args for ins in INSTRUCTIONS if ins.keyword == "USER"]
    uid = int(user.split(":")[0])
    assert uid != 0
    for overlay in OVERLAYS:
        for obj in build(DEPLOY / "overlays" / overlay):
            if obj["kind"] in ("DaemonSet", "Deployment") and obj["metadata"]["name"] != "postgres":
                assert obj["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid
                for container in containers(obj):
                    command = container.get("command", [])
                    if command and command[0].startswith("/app/.venv/bin/"):
                        assert (REPO / ".venv" / "bin" / command[0].rsplit("/", 1)[1]).exists(), command


def test_helm_and_kubectl_are_pinned_and_checked() -> None:
    args = {}
    for ins in INSTRUCTIONS:
        if ins.keyword == "ARG" and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            args[key] = value
    for tool in ("KUBECTL", "HELM"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", args[f"{tool}_VERSION"])
        for arch in ("AMD64", "ARM64"):
            assert re.fullmatch(r"[0-9a-f]{64}", args[f"{tool}_SHA256_{arch}"])
    downloads = " ".join(ins.args for ins in INSTRUCTIONS if ins.keyword == "RUN" and "curl" in ins.args)
    assert downloads.count("sha256sum -c") == 2
    assert "${KUBECTL_VERSION}" in downloads and "${HELM_VERSION}" in downloads


def test_every_run_step_is_valid_shell() -> None:
    runs = [ins.args for ins in INSTRUCTIONS if ins.keyword == "RUN"]
    assert len(runs) >= 4
    for script in runs:
        result = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, check=False, timeout=10)
        assert result.returncode == 0, f"{script}\n{result.stderr}"

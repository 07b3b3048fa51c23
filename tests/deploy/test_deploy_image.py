"""The Dockerfile, read statically (no Docker engine needed): pinned base, multi-stage, non-root,
no secrets, constraints-pinned install, no build tools in the runtime stage, and a build
context (.dockerignore) that holds what the COPY lines need and nothing else."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from deploy_support import REPO

pytestmark = pytest.mark.deploy

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "clang", "libc6-dev", "python3-dev")
SECRET_WORDS = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE", re.IGNORECASE)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    result = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def parse() -> tuple[dict[str, str], list[Stage]]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            parts = [p for p in args.split() if not p.startswith("--")]
            base = parts[0]
            for arg, default in global_args.items():
                base = base.replace("${" + arg + "}", default).replace("$" + arg, default)
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            if keyword == "ARG" and "=" in args:
                key, _, value = args.partition("=")
                global_args[key.strip()] = value.strip().strip('"')
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def test_build_is_multi_stage_and_the_runtime_stage_copies_only_the_built_tree() -> None:
    _, stages = parse()
    assert len(stages) >= 2
    build_names = {s.name for s in stages[:-1]}
    runtime = stages[-1]
    copies_from = [c for c in runtime.all("COPY") if c.startswith("--from=")]
    assert copies_from, "the runtime stage must take its files from a build stage"
    for copy in copies_from:
        assert copy.split()[0].removeprefix("--from=") in build_names


def test_base_images_are_slim_python_pinned_by_version() -> None:
    _, stages = parse()
    for stage in stages:
        if stage.base in {s.name for s in stages}:
            continue
        image, _, digest = stage.base.partition("@")
        repository, _, tag = image.rpartition(":")
        assert repository == "python", stage.base
        assert tag, f"{stage.base}: pin the base image"
        assert tag != "latest", f"{stage.base}: pin the base image"
        assert re.match(r"^\d+\.\d+(\.\d+)?-slim-[a-z]+$", tag), (
            f"{stage.base}: want X.Y-slim-<debian>"
        )
        assert not digest or digest.startswith("sha256:"), stage.base


def test_builds_offline_and_with_the_classic_builder() -> None:
    """`make test-containers` builds with DOCKER_BUILDKIT=0 on a machine that reaches no
    registry: a `# syntax=` directive makes BuildKit pull its frontend image first, and the
    classic builder rejects BuildKit-only flags and heredocs."""
    text = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax\s*=", text, re.M | re.I), "drop the # syntax= directive"
    for keyword, args in instructions(text):
        assert "<<" not in args, f"{keyword}: heredocs need BuildKit"
        if keyword == "RUN":
            assert not re.search(r"--(mount|network|security)\b", args), args
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"--(chmod|link|parents|exclude)\b", args), args


def test_runtime_user_is_numeric_and_not_root() -> None:
    _, stages = parse()
    users = stages[-1].all("USER")
    assert users, "the runtime stage must switch to a non-root USER"
    uid = users[-1].split(":")[0]
    # Kubernetes can only prove runAsNonRoot for a numeric uid.
    assert uid.isdigit(), users[-1]
    assert int(uid) > 0, users[-1]


def test_no_secret_is_baked_into_the_image() -> None:
    _, stages = parse()
    for stage in stages:
        for keyword in ("ENV", "ARG", "LABEL"):
            for args in stage.all(keyword):
                names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", args) or [args.split()[0]]
                for name in names:
                    assert not SECRET_WORDS.search(name), f"{keyword} {name} in the image"
    text = DOCKERFILE.read_text()
    assert ".env" not in re.findall(r"^COPY[^\n]*", text, re.MULTILINE), "never copy .env"


def test_the_project_installs_pinned_by_the_constraints_file() -> None:
    _, stages = parse()
    build = stages[:-1]
    copies = " ".join(c for s in build for c in s.all("COPY"))
    assert "constraints.txt" in copies
    runs = [r for s in build for r in s.all("RUN") if "pip install" in r]
    assert runs, "the build stage installs the project with pip"
    assert any(re.search(r"(-c|--constraint)\s+constraints\.txt", r) for r in runs), runs
    # Installing the project itself (.), not an editable link into a source tree that the
    # runtime stage does not have.
    assert any(re.search(r"\s\.(\s|$)", r) and " -e " not in r for r in runs), runs


def test_runtime_stage_has_no_build_tools() -> None:
    _, stages = parse()
    runtime = stages[-1]
    for run in runtime.all("RUN"):
        assert "pip install" not in run, "install in the build stage, copy the result"
        for tool in BUILD_TOOLS:
            assert not re.search(rf"(^|\s){re.escape(tool)}(\s|$)", run), f"{tool} in runtime"


def test_entrypoint_is_hiker_and_health_uses_the_metrics_port() -> None:
    _, stages = parse()
    runtime = stages[-1]
    (entrypoint,) = runtime.all("ENTRYPOINT")
    # Exec form, so signals reach hiker and `docker run IMAGE <service>` appends the service.
    assert json.loads(entrypoint) == ["hiker"]
    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert "HIKER_METRICS_PORT" in healthcheck


def test_the_image_listens_on_its_own_interfaces() -> None:
    """Hiker's defaults are loopback, which a container's port mapping cannot reach."""
    _, stages = parse()
    env = " ".join(stages[-1].all("ENV"))
    for name in ("HIKER_METRICS_HOST", "HIKER_HTTP_HOST", "HIKER_API_HOST"):
        assert re.search(rf"\b{name}=0\.0\.0\.0\b", env), name


def _pattern(line: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus **) as a regex over slash paths."""
    body = line.strip("/")
    out = ""
    i = 0
    while i < len(body):
        if body.startswith("**", i):
            out += ".*"
            i += 2
        elif body[i] == "*":
            out += "[^/]*"
            i += 1
        elif body[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(body[i])
            i += 1
    return re.compile(out + "$")


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _pattern(line.lstrip("!"))))
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, pattern in rules:
        if any(pattern.match(p) for p in prefixes):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        "tests/unit/test_x.py",
        "tests/deploy/conftest.py",
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "deploy/compose/.env",
        "deploy/k8s/secrets.env",
        "services/hiker/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".mypy_cache/3.11/x.json",
        "charts/hiker/values.yaml",
    ],
)
def test_dockerignore_keeps_tests_caches_and_secrets_out(path: str) -> None:
    assert ignored(path)


def test_every_copied_source_exists_and_is_in_the_build_context() -> None:
    _, stages = parse()
    for stage in stages:
        for copy in stage.all("COPY"):
            if copy.startswith("--from="):
                continue
            sources = [p for p in copy.split() if not p.startswith("--")][:-1]
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: missing"
                assert not ignored(source), f"COPY {source}: excluded by .dockerignore"
                if (REPO / source).is_dir():
                    probe = next(Path(REPO / source).rglob("*.py"), None)
                    if probe is not None:
                        assert not ignored(str(probe.relative_to(REPO))), probe

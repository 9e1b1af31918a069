"""The container images (images/*/Dockerfile), read without building them: they install the project
as the Makefile's $(VENV)/.installed target does, and what they run exists."""
from __future__ import annotations

import ast
import json
import pathlib
import re
import shlex

import pytest

from pipeline.config import PipelineConfig

REPO = pathlib.Path(__file__).resolve().parent.parent.parent
IMAGES = REPO / "images"
DOCKERFILES = {name: IMAGES / name / "Dockerfile" for name in ("pipeline", "model-server")}
VENV = "/app/.venv"


def instructions(path: pathlib.Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments and blank lines dropped."""
    result, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    return result


def makefile() -> str:
    return (REPO / "Makefile").read_text()


def makefile_uv_version() -> str:
    match = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", makefile(), re.M)
    assert match, "Makefile sets no UV_VERSION"
    return match.group(1)


def recipe(target: str) -> list[str]:
    """The command lines of a Makefile target (tab-indented lines after `target:`)."""
    lines = makefile().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    commands = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        if not line.strip().startswith("#"):
            commands.append(line.strip())
    return commands


def shell_commands(path: pathlib.Path) -> list[str]:
    """Each command of every RUN, split at `&&`."""
    return [part.strip() for keyword, arguments in instructions(path) if keyword == "RUN"
            for part in arguments.split("&&")]


def uv_pip_installs(commands: list[str]) -> list[list[str]]:
    """What each `uv pip install` installs, with the target interpreter (--python X) and --quiet left out."""
    installs = []
    for command in commands:
        tokens = shlex.split(command)
        if "uv" not in tokens or tokens[tokens.index("uv") + 1:tokens.index("uv") + 3] != ["pip", "install"]:
            continue
        rest, kept = tokens[tokens.index("uv") + 3:], []
        while rest:
            token = rest.pop(0)
            if token == "--python":
                rest.pop(0)
            elif token != "--quiet":
                kept.append(token)
        installs.append(kept)
    return installs


def option(tokens: list[str], name: str) -> str | None:
    return tokens[tokens.index(name) + 1] if name in tokens else None


def json_form(path: pathlib.Path, keyword: str) -> list[str]:
    values = [json.loads(arguments) for word, arguments in instructions(path) if word == keyword]
    assert len(values) == 1, f"{path}: expected one {keyword} in exec (JSON) form"
    return values[0]


def setup_call() -> dict[str, object]:
    """setup()'s literal keyword arguments, read from setup.py without running it."""
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    values = {}
    for keyword in call.keywords:
        try:
            values[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:  # find_packages(...) and other calls
            pass
    return values


def defines_function(module: pathlib.Path, name: str) -> bool:
    return any(isinstance(node, ast.FunctionDef) and node.name == name
               for node in ast.parse(module.read_text()).body)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_base_is_a_build_arg_defaulting_to_python_311_slim_bookworm(image):
    steps = instructions(DOCKERFILES[image])
    assert steps[0][0] == "ARG" and steps[0][1].startswith("BASE="), "ARG BASE must come before FROM"
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-bookworm", steps[0][1].removeprefix("BASE="))
    assert [arguments for keyword, arguments in steps if keyword == "FROM"] == ["${BASE}"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_uv_is_the_makefiles_version(image):
    steps = instructions(DOCKERFILES[image])
    args = {arguments.partition("=")[0]: (index, arguments.partition("=")[2])
            for index, (keyword, arguments) in enumerate(steps) if keyword == "ARG"}
    index, version = args["UV_VERSION"]
    assert version == makefile_uv_version()
    # An ARG declared before FROM is not seen by RUN: it must be declared inside the stage.
    assert index > next(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    pip_installs = [shlex.split(command) for command in shell_commands(DOCKERFILES[image]) if "pip install" in command
                    and "uv pip" not in command]
    assert any("uv==${UV_VERSION}" in tokens for tokens in pip_installs)
    assert any('"uv==$(UV_VERSION)"' in command for command in recipe("$(VENV)/.installed"))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_installs_are_the_makefiles(image):
    """The lock, then the project with --no-deps, the same options in the same order as `make`."""
    made = uv_pip_installs(recipe("$(VENV)/.installed"))
    assert made == [["-r", "requirements.lock"], ["--no-deps", "-e", "."]], "the Makefile changed: update images/"
    assert uv_pip_installs(shell_commands(DOCKERFILES[image])) == made


@pytest.mark.timeout(30)
@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_venv_is_made_and_installed_into_as_by_make(image):
    commands = shell_commands(DOCKERFILES[image])
    venvs = [shlex.split(command) for command in commands if re.search(r"\buv venv\b", command)]
    made = [shlex.split(command) for command in recipe("$(VENV)/.installed") if re.search(r"\buv venv\b", command)]
    assert len(venvs) == 1 and len(made) == 1
    assert option(venvs[0], "--python") == option(made[0], "--python") == "3.11"
    assert venvs[0][-1] == VENV
    for command in commands:
        if "uv pip install" in command:
            assert option(shlex.split(command), "--python") == f"{VENV}/bin/python"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_sources_are_copied_before_their_install(image):
    steps = instructions(DOCKERFILES[image])

    def first(predicate) -> int:
        return next(index for index, step in enumerate(steps) if predicate(*step))

    copy_lock = first(lambda keyword, arguments: keyword == "COPY" and "requirements.lock" in arguments.split())
    copy_all = first(lambda keyword, arguments: keyword == "COPY" and arguments.split()[0] == ".")
    install_lock = first(lambda keyword, arguments: keyword == "RUN" and "-r requirements.lock" in arguments)
    install_project = first(lambda keyword, arguments: keyword == "RUN" and "--no-deps" in arguments)
    # The lock's layer comes before the source's, so editing code does not reinstall the dependencies.
    assert copy_lock < install_lock < copy_all < install_project


@pytest.mark.timeout(30)
@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_venv_goes_on_path_after_the_installs(image):
    """The installs run the base's python3 (which has uv), as the Makefile runs $(PYTHON), not the venv's."""
    steps = instructions(DOCKERFILES[image])
    on_path = [index for index, (keyword, arguments) in enumerate(steps)
               if keyword == "ENV" and f"PATH={VENV}/bin:$PATH" in arguments.split()]
    runs = [index for index, (keyword, _) in enumerate(steps) if keyword == "RUN"]
    assert len(on_path) == 1 and on_path[0] > max(runs)


@pytest.mark.timeout(30)
def test_pipeline_image_runs_the_console_script():
    assert json_form(DOCKERFILES["pipeline"], "ENTRYPOINT") == ["taxi-pipeline"]
    scripts = dict(entry.replace(" ", "").split("=", 1)
                   for entry in setup_call()["entry_points"]["console_scripts"])
    module, _, function = scripts["taxi-pipeline"].partition(":")
    path = REPO / (module.replace(".", "/") + ".py")
    assert path.is_file() and defines_function(path, function)


@pytest.mark.timeout(30)
def test_model_server_image_runs_serving_server_like_make_serve():
    dockerfile = DOCKERFILES["model-server"]
    entrypoint, cmd = json_form(dockerfile, "ENTRYPOINT"), json_form(dockerfile, "CMD")
    assert entrypoint[:3] == ["python", "-m", "serving.server"]
    assert (REPO / "serving" / "server" / "__main__.py").is_file()
    flags = dict(argument.removeprefix("--").partition("=")[::2] for argument in entrypoint[3:] + cmd)
    declared = set(re.findall(r'add_argument\("--(\w+)"', (REPO / "serving/server/model_server.py").read_text()))
    assert set(flags) <= declared, f"flags the server does not take: {set(flags) - declared}"
    assert flags["host"] == "0.0.0.0"
    # The Makefile's serve ports, and the ones the image exposes.
    serve = " ".join(recipe("serve"))
    assert f"--port={flags['port']}" in serve and f"--rest_api_port={flags['rest_api_port']}" in serve
    exposed = {arguments for keyword, arguments in instructions(dockerfile) if keyword == "EXPOSE"}
    assert exposed == {f"{flags['port']} {flags['rest_api_port']}"}
    volumes = [json.loads(arguments) for keyword, arguments in instructions(dockerfile) if keyword == "VOLUME"]
    volumes = [volume for listed in volumes for volume in listed]
    for path in (flags["model_base_path"], flags["request_log_file"]):
        assert any(path.startswith(volume.rstrip("/") + "/") for volume in volumes), f"{path} is not on a volume"


@pytest.mark.timeout(30)
def test_dockerignore_keeps_environments_and_outputs_out_of_the_context():
    patterns = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".venv", "out", ".git"} <= patterns
    # What the images copy must stay in the context.
    assert not patterns & {"requirements.lock", "setup.py", "pipeline", "models", "serving", "data", "schema", "*"}


@pytest.mark.timeout(30)
def test_kubeflow_image_default_is_the_project_and_its_version():
    setup = setup_call()
    assert PipelineConfig().kubeflow_image == f"{setup['name']}:{setup['version']}"

"""The alert rules in serving/deploy/ as Prometheus's own promtool reads them: they load, the
config that loads them is valid, and each alert's unit tests (one case that fires, one that
stays silent) pass."""
from __future__ import annotations

import json
import pathlib
import re
import subprocess

import pytest
import yaml

from serving.server.metrics import ServerMetrics
from tests.services.debian_binaries import MissingBinary, debian_binary

REPO = pathlib.Path(__file__).resolve().parents[3]
DEPLOY = REPO / "serving" / "deploy"
RULES = DEPLOY / "alert_rules.yml"
RULE_TESTS = sorted((DEPLOY / "alert_tests").glob("*.yml"))
# A series name in a PromQL expression: the server's (TF Serving's and model_server_*) and the pipeline's textfiles'.
SERIES = re.compile(r"(?<![\w:])(:tensorflow:serving:\w+|model_server_\w+|taxi_\w+)")


@pytest.fixture(scope="module")
def promtool() -> str:
    try:
        return str(debian_binary("promtool"))
    except MissingBinary as error:
        pytest.fail(str(error), pytrace=False)


def _alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
            if "alert" in rule]


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=DEPLOY)


@pytest.mark.timeout(120)
def test_promtool_accepts_the_rules_and_the_prometheus_config(promtool):
    rules = _run(promtool, "check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in rules.stdout
    config = _run(promtool, "check", "config", str(DEPLOY / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


@pytest.mark.timeout(180)
def test_promtool_unit_tests_of_every_alert_pass(promtool):
    assert RULE_TESTS, f"no promtool tests in {DEPLOY / 'alert_tests'}"
    result = _run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


def test_every_alert_has_a_case_that_fires_and_one_that_stays_silent():
    firing, silent = set(), set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert not names - firing, f"alerts without a promtool case that fires: {sorted(names - firing)}"
    assert not names - silent, f"alerts without a promtool case that stays silent: {sorted(names - silent)}"
    assert not (firing | silent) - names, f"cases for alerts that do not exist: {sorted((firing | silent) - names)}"


def test_every_alert_tells_what_happened_and_what_to_do():
    for rule in _alerts():
        annotations, where = rule.get("annotations", {}), f"{RULES.name}: alert {rule['alert']}"
        assert annotations.get("summary"), f"{where} has no summary"
        runbook = annotations.get("runbook", "")
        assert runbook and "\n" not in runbook.strip(), f"{where}: the runbook must be one line saying what to do"
        assert rule.get("labels", {}).get("severity") in ("page", "ticket"), f"{where}: severity page or ticket"


def _series_read() -> dict[str, str]:
    """Every series name the rules and the dashboard query -> where the first one is."""
    exprs = [(f"{RULES.name}: {rule['alert']}", rule["expr"]) for rule in _alerts()]
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs += [(f"grafana-dashboard.json: panel {panel['title']!r}", target["expr"])
              for panel in dashboard["panels"] for target in panel.get("targets", [])]
    found: dict[str, str] = {}
    for where, expr in exprs:
        for name in SERIES.findall(expr):
            found.setdefault(name, where)
    return found


def _server_series() -> set[str]:
    """The sample names the model server's registry exposes (histograms as _bucket, _sum and _count)."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\w+)", ServerMetrics().exposition().decode(), flags=re.M):
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
    return names


def _pipeline_series() -> set[str]:
    """The textfile gauges the pipeline code names: quoted literals, and f"taxi_..._{name}" templates whose
    `name` is a quoted word of the same file."""
    names = set()
    for path in (REPO / "pipeline").rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'"(taxi_\w+)"', text))
        words = set(re.findall(r'"(\w+)"', text))
        for prefix in re.findall(r'f"(taxi_\w+_)\{\w+\}"', text):
            names |= {prefix + word for word in words}
    return names


def test_every_series_the_rules_and_the_dashboard_read_is_one_the_project_writes():
    """The names are a contract between the server, the pipeline's textfile writers and the rules: a rule on a
    name nobody writes would stay silent for ever."""
    written = _server_series() | _pipeline_series()
    unknown = {name: where for name, where in _series_read().items() if name not in written}
    assert not unknown, ("series read but written neither by serving/server/metrics.py nor by pipeline/ "
                         f"(name: first place read): {unknown}")

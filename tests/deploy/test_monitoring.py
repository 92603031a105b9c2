"""The monitoring kit in ``deploy/``: Prometheus alert rules, their unit tests, the scrape
example and the Grafana dashboards.

promtool accepts the rules and the scrape example and passes the rules' unit tests, which
must fire and quieten every alert. Every expression, in the rules and on the dashboards,
may name only metrics and labels a role exports, and only label values the code can
produce: the metrics are found by reading the platform's own source (every
``prometheus_client`` metric it declares), so a renamed metric or label fails here rather
than as an empty panel or an alert that can never fire."""

from __future__ import annotations

import ast
import importlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML comes with kubernetes-validate

from cdn_ctl.domain import Health, RouteLevel
from headend.metrics import BIDI_STREAM, CLIENT_STREAM, SERVER_STREAM, UNARY
from transcode.domain import ChannelState

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = sorted(PROMETHEUS.glob("*.rules.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
PACKAGES = ("headend", "epg", "subscriber", "transcode", "cdn_ctl", "console")
# What each prometheus_client type exports under its name (a Counter drops its own _total).
_SUFFIXES = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "Summary": ("", "_sum", "_count"),
}
# Families a custom collector builds, as the kind of metric they export.
_FAMILIES = {"CounterMetricFamily": "Counter", "GaugeMetricFamily": "Gauge"}
# Every scraped series has these; `up` is Prometheus's own, one per scrape target.
_TARGET_LABELS = frozenset({"job", "instance"})


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool, installed by scripts/system-deps.sh (Debian's prometheus) when missing."""
    found = shutil.which("promtool")
    if found is None:
        run = subprocess.run(
            [str(ROOT / "scripts" / "system-deps.sh")], capture_output=True, text=True, check=False
        )
        found = shutil.which("promtool")
        if found is None:
            pytest.skip(f"promtool cannot be installed here: {run.stderr.strip()[-400:]}")
    return found


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=300, check=False
    )


# ---- what the platform exports


@dataclass(frozen=True)
class Family:
    """A metric family as the source declares it."""

    kind: str  # "Counter", "Gauge", "Histogram", "Summary"
    labels: frozenset[str]
    where: str


@cache
def declared() -> dict[str, Family]:
    """Family name (a counter's with its ``_total``) -> how it is declared, for every
    ``prometheus_client`` metric in the platform's source (a custom collector's families
    too)."""
    families: dict[str, Family] = {}
    for path in sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        kinds = {
            alias.asname or alias.name: _FAMILIES.get(alias.name, alias.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.module in ("prometheus_client", "prometheus_client.core")
            for alias in node.names
            if alias.name in _SUFFIXES or alias.name in _FAMILIES
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            kind = kinds.get(node.func.id)
            if kind is None:
                continue
            where = f"{path}:{node.lineno}"
            assert node.args, f"{where}: a metric whose name is not its first argument"
            first = node.args[0]
            assert isinstance(first, ast.Constant), f"{where}: a metric name that is not a literal"
            assert isinstance(first.value, str), where
            families[first.value] = Family(kind, frozenset(_label_names(node, where)), where)
    return families


@cache
def exported() -> dict[str, frozenset[str]]:
    """Series name -> label names, for every metric the platform's source declares."""
    series = {"up": frozenset[str]()}
    for name, family in declared().items():
        base = name.removesuffix("_total") if family.kind == "Counter" else name
        for suffix in _SUFFIXES[family.kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[base + suffix] = family.labels | extra
    return series


def _label_names(call: ast.Call, where: str) -> set[str]:
    given = call.args[2] if len(call.args) > 2 else None
    for keyword in call.keywords:
        if keyword.arg in ("labelnames", "labels"):
            given = keyword.value
    if given is None:
        return set()
    assert isinstance(given, ast.List | ast.Tuple), f"{where}: label names not a literal list"
    names: set[str] = set()
    for element in given.elts:
        assert isinstance(element, ast.Constant), f"{where}: a label name that is not a literal"
        assert isinstance(element.value, str), where
        names.add(element.value)
    return names


def _rpc_names() -> tuple[frozenset[str], frozenset[str]]:
    """Every gRPC service's full name and every method's name, as the metrics label them."""
    services: set[str] = set()
    methods: set[str] = set()
    for path in sorted((ROOT / "protos").glob("*_pb2.py")):
        module: Any = importlib.import_module(f"protos.{path.stem}")
        for service in module.DESCRIPTOR.services_by_name.values():
            services.add(service.full_name)
            methods.update(m.name for m in service.methods)
    return frozenset(services), frozenset(methods)


@cache
def label_values() -> dict[tuple[str, str], frozenset[str]]:
    """The values the code gives the labels whose values come from a closed set."""
    services, methods = _rpc_names()
    kinds = frozenset({UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI_STREAM})
    rpc = {
        (series, label): values
        for series in (
            "grpc_server_started_total",
            "grpc_server_handled_total",
            "grpc_server_handling_seconds_bucket",
        )
        for label, values in (
            ("grpc_service", services),
            ("grpc_method", methods),
            ("grpc_type", kinds),
        )
    }
    return {
        ("transcode_live_channel_state", "state"): frozenset(s.value for s in ChannelState),
        ("cdn_edge_state", "state"): frozenset(h.value for h in Health),
        ("cdn_routes_total", "level"): frozenset(r.value for r in RouteLevel),
        **rpc,
        ("grpc_server_handled_total", "grpc_code"): frozenset(c.name for c in grpc.StatusCode),
    }


# ---- what an expression names


class Matcher(NamedTuple):
    """One label matcher of a selector: ``label op "value"``."""

    label: str
    op: str
    value: str


class Selector(NamedTuple):
    """A metric an expression reads and the label matchers it reads it with."""

    metric: str
    matchers: tuple[Matcher, ...]


_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_NAME = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_NOT_METRICS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
# Grafana's variables: the interval ones become a duration, the others a regex for "all".
_INTERVALS = re.compile(r"\$__(?:rate_interval|interval|range)\b")
_VARIABLE = re.compile(r"\$(?:\{\w+\}|\w+)")


def as_promql(expr: str) -> str:
    """A dashboard's expression with Grafana's variables replaced as Grafana would."""
    return _VARIABLE.sub(".*", _INTERVALS.sub("5m", expr))


def selectors(expr: str) -> tuple[list[Selector], set[str]]:
    """The selectors an expression reads, and the label names it groups or matches on."""
    found: list[Selector] = []

    def braced(match: re.Match[str]) -> str:
        body = match.group(2)
        matchers = [Matcher(*m.groups()) for m in _MATCHER.finditer(body)]
        consumed = "".join(m.group(0) for m in _MATCHER.finditer(body))
        assert consumed.strip() == body.strip(), f"cannot read the matchers {{{body}}}"
        assert match.group(1), f"a selector without a metric name: {{{body}}}"
        found.append(Selector(match.group(1), tuple(matchers)))
        return " "

    rest = _SELECTOR.sub(braced, expr)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # ranges and subqueries
    rest = re.sub(r"\boffset\s+-?\d+\w*", " ", rest)
    grouped = {
        label.strip() for labels in _GROUPING.findall(rest) for label in labels.split(",")
    } - {""}
    rest = _GROUPING.sub(" ", rest)
    for name in _NAME.findall(rest):
        if name.lower() not in _NOT_METRICS:
            found.append(Selector(name, ()))
    return found, grouped


def problems(expr: str) -> list[str]:
    """What in ``expr`` the platform does not export (an empty list when all of it is)."""
    series = exported()
    found, grouped = selectors(expr)
    out = []
    known_labels = set(_TARGET_LABELS)
    for metric, matchers in found:
        labels = series.get(metric)
        if labels is None:
            out.append(f"no role exports {metric}")
            continue
        known_labels |= labels
        for m in matchers:
            if m.label not in labels | _TARGET_LABELS:
                out.append(f"{metric} has no label {m.label}")
            values = label_values().get((metric, m.label))
            alternatives = m.value.split("|") if m.op in ("=~", "!~") else [m.value]
            literal = all(re.fullmatch(r"[\w./-]+", a) for a in alternatives)
            if values is not None and literal:
                out += [
                    f"{metric}{{{m.label}}} is never {a!r}" for a in alternatives if a not in values
                ]
    out += [f"no metric here has the label {label}" for label in sorted(grouped - known_labels)]
    return out


# ---- the rules and the dashboards


def _rules() -> list[dict[str, Any]]:
    return [
        r for path in RULES for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]
    ]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard(path: Path) -> dict[str, Any]:
    model: dict[str, Any] = json.loads(path.read_text())
    return model


def _dashboard_exprs(path: Path) -> list[str]:
    return [
        as_promql(t["expr"])
        for p in _panels(_dashboard(path)["panels"])
        for t in p.get("targets", [])
    ]


def test_the_kit_is_there() -> None:
    assert RULES
    assert RULE_TESTS
    titles = {_dashboard(p)["title"] for p in DASHBOARDS}
    assert {"Live channels", "Edges and front door"} <= titles


def test_promtool_accepts_the_rules_and_the_scrape_example(promtool: str) -> None:
    run = _promtool(promtool, "check", "rules", *map(str, RULES))
    assert run.returncode == 0, run.stdout + run.stderr
    config = PROMETHEUS / "prometheus.yml"
    run = _promtool(promtool, "check", "config", "--syntax-only", str(config))
    assert run.returncode == 0, run.stdout + run.stderr
    named = yaml.safe_load(config.read_text())["rule_files"]
    assert sorted(PROMETHEUS / n for n in named) == RULES


def test_the_rules_unit_tests_pass(promtool: str) -> None:
    run = _promtool(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_wrong_expectation_fails_the_unit_tests(promtool: str, tmp_path: Path) -> None:
    # The unit tests compare what fires: an alert that fires a step early fails them.
    for path in RULES:
        text = path.read_text()
        assert "        for: 2m\n" in text
        (tmp_path / path.name).write_text(text.replace("        for: 2m\n", "        for: 1m\n"))
    (tmp_path / "tests").mkdir()
    for path in RULE_TESTS:
        shutil.copy(path, tmp_path / "tests" / path.name)
    run = _promtool(
        promtool, "test", "rules", *(str(tmp_path / "tests" / p.name) for p in RULE_TESTS)
    )
    assert run.returncode == 1
    assert "EdgeDown" in run.stdout + run.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    assert alerts == fired
    assert alerts == quiet


def test_every_alert_says_how_urgent_and_what() -> None:
    for rule in _rules():
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]
        # Whatever the expression keeps to identify the broken thing, the summary names.
        _, grouped = selectors(rule["expr"])
        for label in grouped & {"channel", "edge", "instance"}:
            assert f"$labels.{label}" in rule["annotations"]["summary"], rule["alert"]


@pytest.mark.parametrize("path", RULES + DASHBOARDS, ids=lambda p: p.name)
def test_expressions_read_only_what_the_platform_exports(path: Path) -> None:
    exprs = [r["expr"] for r in _rules()] if path in RULES else _dashboard_exprs(path)
    assert exprs
    for expr in exprs:
        assert problems(expr) == [], expr


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        pytest.param("max by (channel) (transcode_live_segment_age_seconds) > 18",
                     "no role exports transcode_live_segment_age_seconds", id="unknown-metric"),
        pytest.param('cdn_edge_state{region="110101"} == 1', "cdn_edge_state has no label region",
                     id="unknown-label"),
        pytest.param('transcode_live_channel_state{state="slate"} == 1',
                     "transcode_live_channel_state{state} is never 'slate'", id="wrong-case"),
        pytest.param('rate(grpc_server_handled_total{grpc_method="Login"}[5m])',
                     "is never 'Login'", id="unknown-rpc"),
        pytest.param('rate(grpc_server_handled_total{grpc_method="/headend.subscriber.v1.SubscriberService/DeviceLogin"}[5m])',
                     "is never '/headend.subscriber.v1.SubscriberService/DeviceLogin'",
                     id="full-method-name"),
        pytest.param('rate(grpc_server_handled_total{grpc_type="unary_unary"}[5m])',
                     "is never 'unary_unary'", id="unknown-rpc-type"),
        pytest.param("sum by (carrier) (rate(cdn_routes_total[5m]))",
                     "no metric here has the label carrier", id="unknown-grouping"),
    ],
)  # fmt: skip
def test_the_expression_check_finds_what_is_not_exported(expr: str, problem: str) -> None:
    found = problems(expr)
    assert any(problem in p for p in found), found


# A row of the README's metrics table: | `name` | type | `label`, `label` | meaning |
_README_ROW = re.compile(
    r"^\| `([a-z_:][a-z0-9_:]*)` \| (counter|gauge|histogram|summary) \|([^|]*)\|"
)


def test_the_readme_metrics_table_is_what_the_code_declares() -> None:
    text = (ROOT / "README.md").read_text()
    rows = {
        match[1]: (match[2], frozenset(re.findall(r"`([a-z_]+)`", match[3])))
        for match in (_README_ROW.match(line) for line in text.splitlines())
        if match
    }
    code = {name: (f.kind.lower(), f.labels) for name, f in declared().items()}
    assert rows == code, {
        "not in the README": sorted(set(code) - set(rows)),
        "not in the code": sorted(set(rows) - set(code)),
        "different": sorted(n for n in set(rows) & set(code) if rows[n] != code[n]),
    }


def test_the_source_scan_sees_every_metric_family() -> None:
    series = exported()
    # One of each kind, with its labels, as prometheus_client exports them.
    assert series["transcode_live_segments_published_total"] == {"channel"}
    assert series["cdn_edge_state"] == {"edge", "state"}
    assert series["origin_http_request_seconds_bucket"] == {"route", "le"}
    rpc = {"grpc_type", "grpc_service", "grpc_method"}
    assert series["grpc_server_started_total"] == rpc
    assert series["grpc_server_handled_total"] == rpc | {"grpc_code"}
    assert series["grpc_server_handling_seconds_bucket"] == rpc | {"le"}
    assert series["epg_guide_hours_ahead"] == {"channel"}
    assert "transcode_live_segments_published" not in series


def test_dashboards_are_grafana_models_over_the_prometheus_input(
    promtool: str, tmp_path: Path
) -> None:
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    uids = set()
    exprs = []
    for path in DASHBOARDS:
        model = _dashboard(path)
        assert [i["name"] for i in model["__inputs"]] == ["DS_PROMETHEUS"], path.name
        assert model["uid"] not in uids
        uids.add(model["uid"])
        assert isinstance(model["schemaVersion"], int)
        assert model["title"]
        panels = list(_panels(model["panels"]))
        assert len({p["id"] for p in panels}) == len(panels), f"{path.name}: panel ids repeat"
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] >= 0, panel["title"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == source, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == source, panel["title"]
                exprs.append(as_promql(target["expr"]))
        for variable in model["templating"]["list"]:
            assert variable["datasource"] == source
            assert (
                problems(re.sub(r"label_values\((.*), \w+\)", r"\1", variable["query"]["query"]))
                == []
            )
    # promtool parses each one as it would a recording rule.
    rules = [{"record": f"dashboard:expr_{n}", "expr": e} for n, e in enumerate(exprs)]
    check = tmp_path / "dashboards.rules.yml"
    check.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    run = _promtool(promtool, "check", "rules", str(check))
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_deploy_check_runs_the_rule_tests(promtool: str, tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", deploy)
    rules = deploy / "prometheus" / "headend.rules.yml"
    text = rules.read_text()
    assert 'state="SLATE"' in text
    rules.write_text(text.replace('state="SLATE"', 'state="LIVE"'))
    run = subprocess.run(
        [str(ROOT / "scripts" / "check-deploy.sh"), str(deploy)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 1
    assert "promtool test rules" in run.stderr
    assert "LiveChannelOnSlate" in run.stderr

"""Configuration: the commented example file, where the config comes from, what is refused (with the key path),
`config check`, and that every setting is read by the code that should obey it."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import typing
from datetime import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from spreadwatch import config as config_module
from spreadwatch.config import Config, load_config, load_config_file, parse_config, to_plain
from spreadwatch.edges.cli import cli
from spreadwatch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "spreadwatch.example.yml"
PACKAGE = ROOT / "exporter" / "spreadwatch"


@pytest.fixture(autouse=True)
def no_env_config(monkeypatch):
    monkeypatch.delenv("SPREADWATCH_CONFIG", raising=False)


def write(tmp_path: Path, text: str, name: str = "c.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config_file(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


def leaf_paths(value: object, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in leaf_paths(v, f"{prefix}.{k}" if prefix else str(k))]
    return [prefix]


# ---- the example file ----------------------------------------------------------------------------------------


def test_example_file_loads_and_equals_the_embedded_defaults():
    config = load_config_file(EXAMPLE)
    assert config == Config()
    assert config.config_file == EXAMPLE


def test_example_file_names_every_setting_and_comments_every_section():
    text = EXAMPLE.read_text(encoding="utf-8")
    keys_in_file = set(re.findall(r"(?:^\s*|[{,]\s*)([a-z0-9_]+):", text, flags=re.M))  # block or flow style
    for path in leaf_paths(to_plain(Config())):
        # tickers.NDX.strike_increment -> strike_increment; regime.recommendations.low.bands -> bands
        assert path.split(".")[-1] in keys_in_file, f"{path} is not in spreadwatch.example.yml"
    for section in [f.name for f in dataclasses.fields(Config) if f.name != "config_file"]:
        before = text.split(f"\n{section}:", 1)[0]
        assert before.rstrip().splitlines()[-1].lstrip().startswith("#"), f"section {section} has no comment"


def test_original_settings_have_their_values_here():
    config = Config()
    assert (config.intervals.market_data_seconds, config.intervals.scan_seconds) == (60, 300)
    assert (config.exits.profit_target_pct, config.exits.stop_loss_mult, config.exits.time_exit_dte) == (0.5, 2.0, 1)
    assert (config.risk.max_positions, config.risk.max_total_risk) == (5, 50000.0)
    assert config.display_timezone == "America/Los_Angeles"
    assert config.tickers["NDX"].vol_index == "^VXN" and config.tickers["NDX"].volume_symbol == "QQQ"


# ---- where it comes from -------------------------------------------------------------------------------------


def test_explicit_file_beats_the_environment_which_beats_the_defaults(tmp_path, monkeypatch):
    explicit = write(tmp_path, "risk: {max_positions: 3}\n", "explicit.yml")
    from_env = write(tmp_path, "risk: {max_positions: 7}\n", "env.yml")
    assert load_config(None).risk.max_positions == 5
    monkeypatch.setenv("SPREADWATCH_CONFIG", str(from_env))
    assert load_config(None).risk.max_positions == 7
    assert load_config(explicit).risk.max_positions == 3


def test_cli_config_option_and_environment(tmp_path, monkeypatch):
    explicit = write(tmp_path, "risk: {max_positions: 3}\n", "explicit.yml")
    from_env = write(tmp_path, "risk: {max_positions: 7}\n", "env.yml")
    runner = CliRunner()
    monkeypatch.setenv("SPREADWATCH_CONFIG", str(from_env))
    out = runner.invoke(cli, ["config", "check", "--json"]).output
    assert json.loads(out)["risk"]["max_positions"] == 7
    out = runner.invoke(cli, ["--config", str(explicit), "config", "check", "--json"]).output
    assert json.loads(out)["risk"]["max_positions"] == 3


def test_a_partial_file_keeps_the_defaults_of_everything_else(tmp_path):
    config = load_config_file(write(tmp_path, "exits:\n  profit_target_pct: 0.6\n"))
    assert config.exits.profit_target_pct == 0.6
    assert config.exits.stop_loss_mult == 2.0 and config.scan == Config().scan


def test_empty_file_is_the_defaults(tmp_path):
    assert load_config_file(write(tmp_path, "# nothing set\n")) == Config()


# ---- refused, with the key path --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("scna: {top_n: 5}\n", "scna: unknown key"),
        ("scan: {top: 5}\n", "scan.top: unknown key"),
        ("scan: {top_n: five}\n", "scan.top_n: must be a whole number, got 'five'"),
        ("scan: {top_n: 5.5}\n", "scan.top_n: must be a whole number, got 5.5"),
        ("scan: {top_n: true}\n", "scan.top_n: must be a whole number, got True"),
        ("scan: {min_win_rate: 90}\n", "scan.min_win_rate: must be a fraction; 90 looks like a percent, write 0.9"),
        ("exits: {profit_target_pct: 50}\n", "exits.profit_target_pct: must be a fraction; 50 looks like a percent"),
        ("logging: {console: 'yes please'}\n", "logging.console: must be true or false"),
        ("risk: {max_total_risk: .nan}\n", "risk.max_total_risk: must be a finite number, got nan"),
        ("risk: {max_total_risk: .inf}\n", "risk.max_total_risk: must be a finite number, got inf"),
        ("risk: {max_total_risk: 50_000}\n", "risk.max_total_risk: must be a number, got '50_000'"),
        ("risk: 5\n", "risk: must be a mapping, got 5"),
        ("watch: {NDX: 1}\n", "watch: must be a list, got a mapping"),
        ("tickers: {NDX: {price_symbol: '^NDX'}}\n",
         "tickers.NDX: missing vol_index, volume_symbol, strike_increment"),
        ("regime: {recommendations: {low: {bands: [P98]}}}\n",
         "regime.recommendations.low: missing spread_types, dtes, flow_modes"),
        ("dashboard_port: 5000\n", "dashboard_port: not a spreadwatch setting; the dashboard is Grafana now"),
        ("alert_to_file: true\n", "alert_to_file: not a spreadwatch setting; the exporter's event log file is "
                                  "paths.log_file"),
        ("trading_start_hour: 6\n", "trading_start_hour: not a spreadwatch setting; hours.trading_start"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_wrong_keys_and_types_name_the_key_path(tmp_path, text, expected):
    message = refused(text, tmp_path)
    assert message.startswith(f"{tmp_path / 'c.yml'}: {expected}"), message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("display_timezone: Mars/Olympus\n", "display_timezone: unknown time zone 'Mars/Olympus'"),
        ("intervals: {scan_seconds: 0}\n", "intervals.scan_seconds: must be > 0"),
        ("market: {calendar: XLON}\n", "market.calendar: only XNYS is supported"),
        ("market: {trend: diagonal}\n", "market.trend: must be one of"),
        ("hours: {trading_start: '13:30', trading_end: '13:00'}\n", "hours.trading_start: must be before"),
        ("hours: {entry_start: '09:00', entry_end: '08:00'}\n", "hours.entry_start: must not be after"),
        ("scan: {top_n: 0}\n", "scan.top_n: must be >= 1"),
        ("exits: {stop_loss_mult: 0}\n", "exits.stop_loss_mult: must be > 0"),
        ("exits: {time_exit_dte: -1}\n", "exits.time_exit_dte: must be >= 0"),
        ("exits: {pnl_sources: [logged, broker]}\n",
         "exits.pnl_sources[1]: must be one of logged, market, model, got 'broker'"),
        ("exits: {pnl_sources: [model, logged, model]}\n", "exits.pnl_sources[2]: 'model' is listed twice"),
        ("exits: {pnl_sources: []}\n", "exits.pnl_sources: must list at least one of logged, market, model"),
        ("risk: {max_positions: 0}\n", "risk.max_positions: must be >= 1"),
        ("regime: {boundaries: {low: 12, medium: 11, high: 20, extreme: 30}}\n", "regime.boundaries: must be "
                                                                                 "positive and increasing"),
        ("regime: {boundaries: {low: 12, medium: 16}}\n", "regime.boundaries: must give exactly"),
        ("regime: {hysteresis: 3}\n", "regime.hysteresis: must be >= 0 and less than half the narrowest regime"),
        ("regime: {trend_spreads: {up: [butterfly]}}\n", "regime.trend_spreads.up: unknown value 'butterfly'"),
        ("watch: [RUT]\n", "watch[0]: ticker 'RUT' is not in tickers"),
        ("logging: {file_backups: -1}\n", "logging.file_backups: must be >= 0"),
        ("logging: {level: LOUD}\n", "logging.level: must be DEBUG, INFO, WARNING or ERROR"),
    ],
)
def test_values_that_make_no_sense_are_refused(tmp_path, text, expected):
    assert expected in refused(text, tmp_path)


def test_logged_only_exits_are_one_setting(tmp_path):
    assert load_config_file(write(tmp_path, "exits: {pnl_sources: logged}\n")).exits.pnl_sources == ("logged",)
    assert Config().exits.pnl_sources == ("logged", "market", "model")


def test_yaml_syntax_error_names_the_line(tmp_path):
    message = refused("scan:\n  top_n: 5\n bad: [\n", tmp_path)
    assert re.search(r"c\.yml: line \d", message), message


def test_missing_file_is_an_error():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("/nonexistent/spreadwatch.yml")


# ---- times -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ['"06:30"', "06:30", "'6:30'", "6:30"])
def test_times_quoted_or_not_are_hh_mm(tmp_path, written):
    config = load_config_file(write(tmp_path, f"hours:\n  trading_start: {written}\n"))
    assert config.hours.trading_start == time(6, 30)


@pytest.mark.parametrize("written", ["0630", "630", "390", "'25:00'", "'06:75'", "6.5"])
def test_a_number_or_an_impossible_time_is_refused_not_guessed(tmp_path, written):
    # YAML 1.1 would read 0630 as octal 408 (06:48) and 06:30 as 390 minutes; neither is guessed here.
    assert "hours.trading_start: must be a time HH:MM" in refused(f"hours:\n  trading_start: {written}\n", tmp_path)


def test_numbers_are_what_they_look_like(tmp_path):
    config = load_config_file(write(tmp_path, "risk:\n  max_total_risk: 1e5\n"))
    assert config.risk.max_total_risk == 100000.0
    assert "scan.top_n: must be a whole number, got '012'" in refused("scan:\n  top_n: 012\n", tmp_path)


# ---- config check ------------------------------------------------------------------------------------------------


def test_config_check_prints_the_effective_settings(tmp_path):
    path = write(tmp_path, "risk:\n  max_positions: 3\nhours:\n  entry_start: '07:15'\n")
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"# effective configuration ({path}): OK\n")
    assert "max_positions: 3" in result.output and "entry_start: '07:15'" in result.output
    assert "stop_loss_mult: 2.0" in result.output  # defaults shown too


def test_config_check_json_round_trips(tmp_path):
    result = CliRunner().invoke(cli, ["config", "check", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    assert parse_config(json.loads(result.output)) == Config()


def test_config_check_error_is_one_line_and_non_zero(tmp_path):
    path = write(tmp_path, "scan:\n  min_roi: 35\n")
    result = CliRunner().invoke(cli, ["config", "check", str(path)])  # output holds stderr too
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: {path}: scan.min_roi: must be a fraction; 35 looks like a percent, write 0.35"]


# ---- every setting is used ------------------------------------------------------------------------------------


# A setting counts as read only where the code reads it from a config record: `config.market.calendar`,
# `hours.entry_start` after `hours = self.config.hours`, `t.price_symbol` after `t = config.ticker(name)`, a
# parameter annotated with a record type. An attribute that merely shares a setting's name (`self.calendar`, `ctx.trend`)
# is not a read of it.
RECORDS = {c.__name__: c for c in vars(config_module).values() if isinstance(c, type) and dataclasses.is_dataclass(c)}


def _record_schema() -> tuple[dict[tuple[str, str], object], dict[tuple[str, str], str]]:
    """(record, field) -> the record it holds (a name, or ("items", name) for a dict of records), and
    (record, method) -> the record a method returns (`Config.ticker(name) -> Ticker`)."""
    fields: dict[tuple[str, str], object] = {}
    methods: dict[tuple[str, str], str] = {}
    for name, record in RECORDS.items():
        hints = typing.get_type_hints(record, vars(config_module))
        for f in dataclasses.fields(record):
            hint = hints[f.name]
            args = typing.get_args(hint)
            if getattr(hint, "__name__", None) in RECORDS:
                fields[(name, f.name)] = hint.__name__
            elif typing.get_origin(hint) is dict and getattr(args[1], "__name__", None) in RECORDS:
                fields[(name, f.name)] = ("items", args[1].__name__)
        for method_name, method in vars(record).items():
            if callable(method) and not method_name.startswith("_"):
                returned = typing.get_type_hints(method, vars(config_module)).get("return")
                if getattr(returned, "__name__", None) in RECORDS:
                    methods[(name, method_name)] = returned.__name__
    return fields, methods


FIELDS, METHODS = _record_schema()


def _alias_key(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return f"self.{node.attr}"
    return None


def _record_of(node: ast.expr, aliases: dict[str, object]) -> object:
    """The config record `node` evaluates to, as far as the module shows it (None when it is not one)."""
    key = _alias_key(node)
    if key in aliases:
        return aliases[key]
    if isinstance(node, ast.Name):
        return "Config" if node.id == "config" else None
    if isinstance(node, ast.Attribute):
        if node.attr == "config":  # `self.config`, `snapshot.config`, `ctx.config`
            return "Config"
        inner = _record_of(node.value, aliases)
        return FIELDS.get((inner, node.attr)) if isinstance(inner, str) else None
    if isinstance(node, ast.Subscript):
        inner = _record_of(node.value, aliases)
        return inner[1] if isinstance(inner, tuple) else None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        inner = _record_of(node.func.value, aliases)
        if isinstance(inner, tuple) and node.func.attr == "get":
            return inner[1]
        return METHODS.get((inner, node.func.attr)) if isinstance(inner, str) else None
    return None


def _aliases(tree: ast.Module) -> dict[str, object]:
    """Names (and `self.` attributes) bound to a config record anywhere in the module: assignments, loops over a
    dict of records, parameters annotated with a record type. Repeated so an alias of an alias is found."""
    aliases: dict[str, object] = {}
    for _ in range(3):
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                record = _record_of(node.value, aliases)
                for target in node.targets:
                    if record is not None and _alias_key(target):
                        aliases[_alias_key(target)] = record
            elif isinstance(node, ast.arg) and node.annotation is not None:
                annotation = node.annotation
                name = annotation.value if isinstance(annotation, ast.Constant) else getattr(annotation, "id", None)
                if name in RECORDS:
                    aliases[node.arg] = name
            elif (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)
                  and isinstance(node.iter.func, ast.Attribute)):
                held = _record_of(node.iter.func.value, aliases)
                target = node.target.elts[-1] if isinstance(node.target, ast.Tuple) else node.target
                if isinstance(held, tuple) and node.iter.func.attr in ("values", "items") and _alias_key(target):
                    aliases[_alias_key(target)] = held[1]
    return aliases


def settings_read_outside_config(sources: dict[str, str]) -> set[tuple[str, str]]:
    """(record, field) for every setting read from a config record in `sources` (module name -> source text)."""
    read: set[tuple[str, str]] = set()
    for text in sources.values():
        tree = ast.parse(text)
        aliases = _aliases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                record = _record_of(node.value, aliases)
                if isinstance(record, str):
                    read.add((record, node.attr))
    return read


def package_sources() -> dict[str, str]:
    return {str(path.relative_to(PACKAGE)): path.read_text(encoding="utf-8")
            for path in sorted(PACKAGE.rglob("*.py")) if path.name != "config.py"}


def unread_settings(sources: dict[str, str]) -> list[str]:
    read = settings_read_outside_config(sources)
    return [f"{name}.{f.name}" for name, record in RECORDS.items() for f in dataclasses.fields(record)
            if f.name != "config_file" and (name, f.name) not in read]


def test_every_setting_is_read_by_the_code_that_obeys_it():
    """The original silently ignored several of its settings. Here every field of every config record is read from
    a config record somewhere outside config.py (the loop, the scanner, the calendar, the book...)."""
    assert len(RECORDS) >= 12  # Config and every section record
    unused = unread_settings(package_sources())
    assert not unused, f"settings nothing reads: {unused}"


def test_a_setting_is_read_only_through_a_config_record():
    # An attribute that shares a setting's name is not a read of it: `self.calendar` is no read of market.calendar.
    assert ("Market", "calendar") not in settings_read_outside_config(
        {"m.py": "def f(self, s):\n    return self.calendar, s.calendar, s.config.hours\n"})
    for source in ("def f(config):\n    return config.market.calendar\n",
                   "def f(self):\n    m = self.config.market\n    return m.calendar\n",
                   "def f(market: Market):\n    return market.calendar\n"):
        assert ("Market", "calendar") in settings_read_outside_config({"m.py": source}), source
    t = "def f(config):\n    t = config.ticker('NDX')\n    return t.vol_index, config.regime.recommendations['low'].dtes\n"
    assert {("Ticker", "vol_index"), ("Recommendation", "dtes")} <= settings_read_outside_config({"m.py": t})


def test_config_option_after_the_subcommand_too(tmp_path):
    first = write(tmp_path, "risk: {max_positions: 3}\n", "first.yml")
    second = write(tmp_path, "risk: {max_positions: 4}\n", "second.yml")
    runner = CliRunner()
    out = runner.invoke(cli, ["config", "check", "--config", str(first), "--json"]).output
    assert json.loads(out)["risk"]["max_positions"] == 3
    out = runner.invoke(cli, ["--config", str(first), "config", "check", "--config", str(second), "--json"]).output
    assert json.loads(out)["risk"]["max_positions"] == 4  # the one after the subcommand wins
    # The issue's `spreadwatch run --config FILE ...`: the file is read before anything starts.
    result = runner.invoke(cli, ["run", "--config", str(tmp_path / "missing.yml")])
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path / 'missing.yml'}: config file not found\n"
    result = runner.invoke(cli, ["positions", "summary", "--json", "--config", str(first),
                                 "--db", str(tmp_path / "book.db")])
    assert result.exit_code == 0, result.output

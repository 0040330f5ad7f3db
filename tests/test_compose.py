"""The compose stack, tested without a Docker engine (none is available here; docs/deploy.md says so).

- docker-compose.yml validates against the compose specification vendored in check-jsonschema (offline: every
  proxy variable points at a closed loopback port, so a schema fetch would fail the test), and a broken copy fails.
- Every host file or directory the compose file mounts exists in the repo; secret files are the ones
  .env.example lists and are git-ignored; every `${VAR}` either has a default or is in .env.example.
- The image's command line parses: the Dockerfile's ENTRYPOINT + CMD, the compose `command` and the commented
  replay alternative go through the real click CLI (types converted with `make_context`, and the console script
  run with `--help`), so a typo'd option or a bad value fails here; the environment variables compose sets are
  ones the CLI reads; the mounted config passes `spreadwatch config check`.
- The `ha` profile (a second Prometheus replica, Alertmanager members 2 and 3 beside the default services): both
  replicas run prometheus-ha.yml with their own replica label, scrape the one exporter and send to every member;
  the members form one cluster (the default member names no peer, the others name all the others); host ports are
  distinct; the pair and the cluster run one version.
- The Dockerfile runs as a non-root USER (the uid compose runs), has a HEALTHCHECK on /healthz whose command
  exits 0 against a healthy exporter and non-zero on a 503 or a dead port; images are pinned (no `latest`), and
  Prometheus/Alertmanager are the versions the tests run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import pytest
import requests
import yaml

from exporter_support import Running, make_service
from realstack import free_port

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "exporter" / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
OFFLINE = {name: "http://127.0.0.1:9" for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                                                    "https_proxy", "all_proxy")}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}` / `${VAR:-default}` with .env.example's values (the documented setup)."""
    def one(match: re.Match) -> str:
        name, default = match.group(1), match.group(3)
        return env.get(name, default if default is not None else "")

    return re.sub(r"\$\{(\w+)(:?-([^}]*))?\}", one, text)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def exec_form(instruction: str) -> list[str]:
    values = [args for word, args in dockerfile_instructions() if word == instruction]
    assert values, f"no {instruction} in exporter/Dockerfile"
    parsed = json.loads(values[-1])  # the last one wins
    assert isinstance(parsed, list), f"{instruction} must be in exec form (a JSON array)"
    return parsed


# ------------------------------------------------------------------------------------------------- schema


def check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **OFFLINE, "NO_PROXY": "", "no_proxy": ""})


def test_compose_file_validates_against_the_vendored_compose_spec_offline():
    result = check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_a_broken_compose_file_fails_the_schema_check(tmp_path):
    spec = compose()
    spec["services"]["exporter"]["restart"] = ["unless-stopped"]  # must be a string
    spec["services"]["grafana"]["healthcheck"]["intervall"] = "30s"  # no such key
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = check_jsonschema(broken)
    assert result.returncode != 0
    assert "intervall" in result.stdout + result.stderr


# -------------------------------------------------------------------------------------------------- mounts


def test_every_host_path_the_compose_file_mounts_exists_in_the_repo():
    spec = compose()
    checked = 0
    for name, service in spec["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if isinstance(volume, dict) and volume.get("type") != "bind":
                continue
            if not source.startswith((".", "/")):
                assert source in spec.get("volumes", {}), f"{name}: named volume {source} is not declared"
                continue
            path = ROOT / interpolate(source, env_example())
            assert path.exists(), f"{name} mounts {source}, which is not in the repo"
            if isinstance(volume, str):
                assert volume.endswith(":ro") or not path.is_file(), f"{name}: {volume} should be read-only"
            checked += 1
        build = service.get("build")
        if build:
            context = ROOT / build.get("context", ".")
            assert context.is_dir() and (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    assert checked >= 8


def test_secret_files_are_listed_in_env_example_and_git_ignored():
    spec = compose()
    env = env_example()
    raw = COMPOSE.read_text(encoding="utf-8")
    declared = spec.get("secrets", {})
    assert declared, "compose declares no secrets"
    for service in spec["services"].values():
        for secret in service.get("secrets", []):
            assert (secret if isinstance(secret, str) else secret["source"]) in declared
    for name, secret in declared.items():
        match = re.fullmatch(r"\$\{(\w+):-([^}]+)\}", secret["file"])
        assert match, f"secret {name}: file {secret['file']!r} should be ${{VAR:-default}} (overridable in .env)"
        var, default = match.groups()
        assert var in env, f"secret {name}: {var} is not listed in .env.example"
        assert env[var] == default, f"secret {name}: .env.example's {var} differs from the compose default"
        relative = os.path.normpath(env[var])
        assert not relative.startswith(".."), f"secret {name}: {env[var]} is outside the repo"
        assert f"> {env[var].removeprefix('./')}" in ENV_EXAMPLE.read_text(encoding="utf-8"), \
            f".env.example does not show how to create {env[var]}"
        assert not (ROOT / relative).exists() or not _tracked(relative), f"{relative} is committed"
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", relative], cwd=ROOT)
        assert ignored.returncode == 0, f"secret file {relative} is not git-ignored (add it to .gitignore)"
    # Every other ${VAR} has a default or is documented in .env.example.
    for var, default in re.findall(r"\$\{(\w+)(:?-[^}]*)?\}", raw):
        assert default or var in env, f"${{{var}}} has no default and is not in .env.example"


def _tracked(relative: str) -> bool:
    return bool(subprocess.run(["git", "ls-files", relative], cwd=ROOT, capture_output=True, text=True).stdout)


# ------------------------------------------------------------------------------------ the image's commands


def console_script() -> str:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    (entrypoint,) = exec_form("ENTRYPOINT")[:1]
    assert entrypoint in scripts, f"ENTRYPOINT {entrypoint} is not a console script of the distribution"
    assert scripts[entrypoint] == "spreadwatch.edges.cli_fast:main"  # which hands `run` to the click CLI
    return entrypoint


def command_lines() -> dict[str, list[str]]:
    """Every argv the image can be started with: Dockerfile ENTRYPOINT + CMD, compose's command, and the
    commented alternative in docker-compose.yml (`# command: [...]`)."""
    entry = exec_form("ENTRYPOINT")
    out = {"Dockerfile ENTRYPOINT+CMD": entry[1:] + exec_form("CMD")}
    service = compose()["services"]["exporter"]
    assert isinstance(service["command"], list), "compose command should be a list (no shell splitting)"
    out["compose command"] = entry[1:] + service["command"]
    commented = re.findall(r"^\s*#\s*command:\s*(\[.*\])\s*$", COMPOSE.read_text(encoding="utf-8"), re.M)
    for i, text in enumerate(commented):
        out[f"compose commented command {i + 1}"] = entry[1:] + json.loads(text)
    return out


def resolve(args: list[str]) -> click.Context:
    """Parse argv through the real CLI the way click's invoke would, without running the command: unknown
    commands/options and values of the wrong type raise click.UsageError/BadParameter."""
    from spreadwatch.edges.cli import cli

    ctx = cli.make_context("spreadwatch", list(args))
    command: click.Command = cli
    while isinstance(command, click.Group):
        pending = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args]
        name, command, rest = command.resolve_command(ctx, pending)
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


@pytest.mark.parametrize("where", list(command_lines()))
def test_the_image_command_parses_through_the_cli(where):
    from spreadwatch.edges.server import parse_listen

    args = command_lines()[where]
    ctx = resolve(args)
    assert ctx.command.name == "run"
    host, port = parse_listen(ctx.params["listen"])
    assert host == "0.0.0.0", "in a container the exporter must listen beyond loopback"
    exposed = {int(p.split("/")[0]) for word, rest in dockerfile_instructions() if word == "EXPOSE"
               for p in rest.split()}
    assert port in exposed
    grid = ctx.params.get("grid_file")
    if grid:  # a container path: must be what compose mounts
        targets = [v.split(":")[1] for v in compose()["services"]["exporter"]["volumes"] if isinstance(v, str)]
        assert grid in targets, f"--grid {grid} is not mounted"

    # The console script itself, as the image runs it, with --help appended (exit 0, no side effect).
    script = shutil.which(console_script(), path=str(Path(sys.executable).parent)) or shutil.which("spreadwatch")
    assert script, "the spreadwatch console script is not installed next to this Python"
    result = subprocess.run([script, *args, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: spreadwatch run" in result.stdout


@pytest.mark.parametrize("bad,name_error", [
    (["run", "--lisen", "0.0.0.0:9877"], True),   # typo'd option
    (["runn", "--listen", "0.0.0.0:9877"], True),  # typo'd command
    (["run", "--speed", "fast"], False),           # wrong type
    (["run", "--trend", "upward"], False),         # not a choice
])
def test_a_typo_in_the_command_fails_the_same_check(bad, name_error):
    with pytest.raises(click.UsageError):
        resolve(bad)
    if name_error:  # `--help` is eager: it catches unknown names, not bad values (make_context above does)
        script = shutil.which("spreadwatch", path=str(Path(sys.executable).parent)) or shutil.which("spreadwatch")
        result = subprocess.run([script, *bad, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stdout


def test_the_environment_compose_sets_is_read_by_the_cli_and_the_config_parses():
    from spreadwatch.edges.cli import cli

    def envvars(command: click.Command):
        for param in command.params:
            if param.envvar:
                yield param.envvar
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                yield from envvars(sub)

    known = set(envvars(cli))
    service = compose()["services"]["exporter"]
    env = service["environment"]
    for key in env:
        if key.startswith("SPREADWATCH_"):
            assert key in known, f"compose sets {key}, which no CLI option reads"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"] if isinstance(v, str)}
    config = env["SPREADWATCH_CONFIG"]
    assert config in mounts, f"SPREADWATCH_CONFIG={config} is not a mounted file"
    result = subprocess.run([sys.executable, "-m", "spreadwatch", "config", "check", str(ROOT / mounts[config])],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    db = env["SPREADWATCH_DB"]
    data_volume = [v.split(":")[1] for v in service["volumes"] if isinstance(v, str) and not v.startswith(".")]
    assert any(db.startswith(target + "/") for target in data_volume), "the book is not on the named volume"
    dockerfile_env = " ".join(rest for word, rest in dockerfile_instructions() if word == "ENV")
    assert f"SPREADWATCH_DB={db}" in dockerfile_env  # `docker run` without compose uses the same book


# -------------------------------------------------------------------------------------------- Dockerfile


def test_the_image_runs_as_a_non_root_user_compose_agrees_with():
    users = [rest for word, rest in dockerfile_instructions() if word == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    runs = " ".join(rest for word, rest in dockerfile_instructions() if word == "RUN")
    created = re.search(rf"useradd\b[^&;]*--uid (\d+)[^&;]*\b{re.escape(user)}\b", runs)
    assert created, f"user {user} is not created with a fixed uid"
    compose_user = str(compose()["services"]["exporter"].get("user", ""))
    assert compose_user.split(":")[0] in (created.group(1), user), (compose_user, created.group(1))


class _Status(BaseHTTPRequestHandler):
    status = 503

    def do_GET(self):  # noqa: N802
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"not yet\n")

    def log_message(self, *args):
        pass


def _healthcheck_code(test: list[str]) -> str:
    assert test[:3] == ["CMD", "python", "-c"], test
    code = test[3]
    assert "/healthz" in code
    compile(code, "healthcheck", "exec")
    return code


def test_the_healthcheck_probes_healthz_and_fails_on_503_or_no_answer(tmp_path):
    (health,) = [rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK"]
    dockerfile_code = _healthcheck_code(["CMD", *json.loads(health.split("CMD", 1)[1])])
    compose_code = _healthcheck_code(compose()["services"]["exporter"]["healthcheck"]["test"])
    assert compose_code == dockerfile_code
    assert "127.0.0.1:9877/healthz" in dockerfile_code

    def probe(port: int) -> int:
        code = dockerfile_code.replace("127.0.0.1:9877", f"127.0.0.1:{port}")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30).returncode

    assert probe(free_port()) != 0  # nothing listening

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert probe(server.server_address[1]) != 0  # 503: the loop has not succeeded
    finally:
        server.shutdown()
        server.server_close()

    # The real exporter (service loop + HTTP server in-process, NDX replay day): healthy -> exit 0.
    with Running(make_service(tmp_path)) as running:  # returns after the loop's first cycle: every task ran once
        assert requests.get(running.url + "/healthz", timeout=10).status_code == 200
        assert probe(running.server.address[1]) == 0


# ------------------------------------------------------------------------------------------------- images


def test_every_image_is_pinned_and_matches_the_tested_versions():
    froms = [rest.split()[0] for word, rest in dockerfile_instructions() if word == "FROM"]
    images = {name: s["image"] for name, s in compose()["services"].items() if "image" in s}
    for where, image in [*(("Dockerfile FROM", f) for f in froms), *images.items()]:
        name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        assert tag, f"{where}: {image} has no tag (that is latest)"
        assert tag != "latest" and "latest" not in tag, f"{where}: {image}"
        assert re.search(r"\d", tag), f"{where}: {image} is not a version"
    assert "build" in compose()["services"]["exporter"]  # the exporter image is built from the repo

    for service, binary in (("prometheus", "prometheus"), ("alertmanager", "prometheus-alertmanager")):
        if not shutil.which(binary):
            continue  # the rule/route tests need them; test.sh installs them
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        tested = re.search(r"version (\d+\.\d+)", out.stdout + out.stderr).group(1)
        tag = images[service].rsplit(":", 1)[1].lstrip("v")
        assert tag.startswith(tested + "."), f"compose runs {images[service]}, the tests run {binary} {tested}"


def test_the_dockerfile_copies_only_what_the_dockerignore_lets_through():
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, ".dockerignore should exclude everything by default"
    for word, rest in dockerfile_instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repo"
                assert source.rstrip("/") in allowed, f"COPY {source} is excluded by .dockerignore"



# ------------------------------------------------------------------------------------- the ha profile

HA_ENV = {**env_example(), "PROMETHEUS_CONFIG": "prometheus-ha.yml", "COMPOSE_PROFILES": "ha"}


def services_in(profile: str | None) -> dict[str, dict]:
    """The services `docker compose [--profile PROFILE] up` starts (those without profiles always start)."""
    spec = compose()["services"]
    return {name: s for name, s in spec.items() if not s.get("profiles") or profile in s["profiles"]}


def flag(service: dict, name: str, env: dict[str, str]) -> list[str]:
    """Every value of ``--name=...`` in the service's command, interpolated with ``env``."""
    return [interpolate(arg, env).split("=", 1)[1] for arg in service["command"] if arg.startswith(f"--{name}=")]


def prometheus_config_of(service: dict, env: dict[str, str]) -> dict:
    """The Prometheus config file the service runs: --config.file, mapped back to the host file it mounts."""
    (path,) = flag(service, "config.file", env)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"] if isinstance(v, str)}
    assert path in mounts, f"--config.file={path} is not mounted"
    return yaml.safe_load((ROOT / mounts[path]).read_text(encoding="utf-8"))


def targets(job_or_alerting: dict) -> list[str]:
    return [t for sc in job_or_alerting["static_configs"] for t in sc["targets"]]


def test_the_default_stack_is_one_of_each_and_ha_adds_a_replica_and_two_members():
    assert set(services_in(None)) == {"exporter", "prometheus", "alertmanager", "grafana"}
    assert set(services_in("ha")) - set(services_in(None)) == {"prometheus-b", "alertmanager-2", "alertmanager-3"}
    spec = compose()["services"]
    for name, service in spec.items():  # compose refuses a default service that needs a profile's service
        if not service.get("profiles"):
            assert not set(service.get("depends_on", [])) - set(services_in(None)), name


def test_single_node_prometheus_runs_prometheus_yml_and_ha_runs_the_pair_config_on_both_replicas():
    single = prometheus_config_of(services_in(None)["prometheus"], env_example())
    assert single == yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    ha = services_in("ha")
    replicas = {name: s for name, s in ha.items() if s.get("image", "").startswith("prom/prometheus:")}
    assert set(replicas) == {"prometheus", "prometheus-b"}
    labels = set()
    for name, service in replicas.items():
        config = prometheus_config_of(service, HA_ENV)
        assert config == yaml.safe_load((ROOT / "prometheus" / "prometheus-ha.yml").read_text(encoding="utf-8"))
        assert "expand-external-labels" in flag(service, "enable-feature", HA_ENV), name
        assert config["global"]["external_labels"] == {"replica": "${PROMETHEUS_REPLICA}"}
        labels.add(service["environment"]["PROMETHEUS_REPLICA"])
    assert labels == {"a", "b"}, "each replica needs its own replica label"


def test_each_replica_scrapes_the_one_exporter_and_sends_to_every_cluster_member():
    ha = services_in("ha")
    members = sorted(name for name, s in ha.items() if s.get("image", "").startswith("prom/alertmanager:"))
    assert members == ["alertmanager", "alertmanager-2", "alertmanager-3"]
    exporter_port = resolve(command_lines()["compose command"]).params["listen"].rsplit(":", 1)[1]
    for name in ("prometheus", "prometheus-b"):
        config = prometheus_config_of(ha[name], HA_ENV)
        (alerting,) = config["alerting"]["alertmanagers"]
        assert sorted(targets(alerting)) == sorted(f"{m}:9093" for m in members), name
        assert {"action": "labeldrop", "regex": "replica"} in config["alerting"]["alert_relabel_configs"]
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        assert targets(jobs["spreadwatch"]) == [f"exporter:{exporter_port}"]  # one exporter, one target string
        assert sorted(targets(jobs["alertmanager"])) == sorted(targets(alerting))
        assert sorted(targets(jobs["prometheus"])) == ["prometheus-b:9090", "prometheus:9090"]


def test_the_alertmanagers_form_one_cluster():
    members = {name: s for name, s in services_in("ha").items() if s.get("image", "").startswith("prom/alertmanager:")}
    peers = {}
    for name, service in members.items():
        assert flag(service, "cluster.listen-address", HA_ENV) == ["0.0.0.0:9094"], name
        peers[name] = {p.removesuffix(":9094") for p in flag(service, "cluster.peer", HA_ENV)}
        assert all(p.endswith(":9094") for p in flag(service, "cluster.peer", HA_ENV)), name
        assert peers[name] <= set(members) - {name}, f"{name} peers with {peers[name]}"
        assert len(set(flag(service, "web.external-url", HA_ENV))) == 1
    # The default member names no peer (it must start alone in the single-node stack); every other member names
    # all the others, so the cluster re-forms whichever member restarts.
    assert peers["alertmanager"] == set()
    for name in set(members) - {"alertmanager"}:
        assert peers[name] == set(members) - {name}, name
    urls = [flag(s, "web.external-url", HA_ENV)[0] for s in members.values()]
    assert len(set(urls)) == len(urls), "each member links its own UI in notifications"


def test_published_ports_are_distinct_and_on_loopback_in_the_ha_stack():
    published = []
    for name, service in services_in("ha").items():
        for port in service.get("ports", []):
            host = interpolate(port, HA_ENV).rsplit(":", 1)[0]
            published.append(host)
            if name != "grafana":
                assert host.startswith("127.0.0.1:"), f"{name} publishes {host} beyond loopback"
    assert len(published) == len(set(published)), published


def test_every_replica_and_member_runs_the_tested_version():
    images = {name: s["image"] for name, s in services_in("ha").items() if "image" in s}
    for family in ("prom/prometheus", "prom/alertmanager"):
        tags = {image for image in images.values() if image.startswith(family + ":")}
        assert len(tags) == 1, f"{family}: {tags} (the pair and the cluster must run one version)"

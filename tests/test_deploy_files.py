"""deploy/ read as the machines that run it would: every file parses, every command it runs exists in
the project, every port agrees from the Dockerfile to nginx and Kubernetes, and every environment
variable it sets is one something reads. One test also serves the WSGI entry point through gunicorn
with deploy/gunicorn.conf.py and production settings, the way the `web` container does."""

from __future__ import annotations

import ast
import http.client
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import get_commands
from django.urls import Resolver404, resolve

REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY = REPO_ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
COMPOSE = DEPLOY / "docker-compose.yml"
NGINX_CONF = DEPLOY / "nginx" / "peerlearn.conf"
K8S = DEPLOY / "k8s"
ENV_EXAMPLE = DEPLOY / "production.env.example"
VENV_BIN = Path(sys.executable).parent

APP_SERVICES = {"migrate", "web", "ws", "worker", "beat"}
HEALTH_PATHS = {"/healthz", "/readyz"}
# Ports of the two HTTP processes: (entrypoint command, port).
PROCESS_PORTS = {"web": 8000, "ws": 8001}


# --- What the project reads -----------------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every environment variable config/settings/ reads (env/env_bool/env_list/os.environ)."""
    names: set[str] = set()
    for path in (REPO_ROOT / "config" / "settings").glob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r"\benv(?:_bool|_list)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", text))
        names |= set(re.findall(r"os\.environ(?:\.get\(|\[)\s*[\"']([A-Z][A-Z0-9_]*)[\"']", text))
        # production.py's list of required names
        for match in re.finditer(r"_REQUIRED\s*=\s*\(([^)]*)\)", text):
            names |= set(re.findall(r"[\"']([A-Z][A-Z0-9_]*)[\"']", match[1]))
    return names


def process_env_names() -> set[str]:
    """Variables the entry point and gunicorn's settings read (${NAME...} / os.environ.get)."""
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", ENTRYPOINT.read_text()))
    names |= set(re.findall(r"os\.environ\.get\(\s*\"([A-Z][A-Z0-9_]*)\"", GUNICORN_CONF.read_text()))
    return names


# Read by Django itself (which settings module to load), not by our settings.
FRAMEWORK_ENV = {"DJANGO_SETTINGS_MODULE"}


def allowed_env() -> set[str]:
    return settings_env_names() | process_env_names() | FRAMEWORK_ENV


def entrypoint_commands() -> dict[str, str]:
    """{command: its body} from the `case` of deploy/entrypoint.sh."""
    text = ENTRYPOINT.read_text()
    body = text[text.index("case ") : text.index("esac")]
    commands = {}
    for match in re.finditer(r"^\s{2}([a-z]+)\)\n(.*?);;", body, re.MULTILINE | re.DOTALL):
        commands[match[1]] = match[2]
    return commands


def dockerfile_exposed(stage: str) -> set[int]:
    ports: set[int] = set()
    for line in dockerfile_stages()[stage]:
        if line.startswith("EXPOSE "):
            ports |= {int(p.split("/")[0]) for p in line.split()[1:]}
    return ports


def dockerfile_stages() -> dict[str, list[str]]:
    """{stage name: its lines}; the unnamed last stage is called "final"."""
    stages: dict[str, list[str]] = {}
    current = None
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line)
        if match:
            current = match[1] or "final"
            stages[current] = [line]
        elif current:
            stages[current].append(line)
    return stages


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_documents() -> list[tuple[Path, dict]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        documents += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def k8s_kind(kind: str) -> list[dict]:
    return [doc for _, doc in k8s_documents() if doc["kind"] == kind]


def workloads() -> list[dict]:
    return k8s_kind("Deployment") + k8s_kind("Job")


def containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


# --- The Dockerfile and the entry point -----------------------------------------------------------


def test_dockerfile_stages_and_final_image():
    stages = dockerfile_stages()
    assert {"assets", "wheels", "app", "nginx"} <= set(stages)
    assets = "\n".join(stages["assets"])
    assert "npm ci" in assets and "npm run build" in assets
    app = "\n".join(stages["app"])
    # No compilers or Node in the runtime stage; a non-root user; static files collected at build.
    assert "build-essential" not in app and "npm" not in app and "nodejs" not in app
    user = re.search(r"^USER\s+(\S+)", app, re.MULTILINE)
    assert user and user[1].split(":")[0] not in {"root", "0"}
    assert "collectstatic --noinput" in app
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in app
    # The default target is the application image.
    assert stages["final"][0].split() == ["FROM", "app"]
    # Every path the Dockerfile copies from the build context exists.
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
            for source in sources:
                assert source == "." or (REPO_ROOT / source).exists(), f"COPY {source}: no such path"


def test_runtime_image_leaves_out_only_development_packages():
    """The packages the wheel stage drops are imported by no code that runs in production."""
    match = re.search(r"grep -vE '\^\(([^)]*)\)\S*=='", DOCKERFILE.read_text())
    assert match, "the wheel stage filters requirements.txt"
    dropped = match[1].split("|")
    requirements = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    pinned = {re.split(r"[\[=]", line)[0].lower() for line in requirements if "==" in line}
    assert set(dropped) <= pinned
    modules = {name.replace("-", "_") for name in dropped} | {"pytest_django"}
    pattern = re.compile(rf"^\s*(?:import|from)\s+({'|'.join(sorted(modules))})\b", re.MULTILINE)
    for top in ("config", "tenants", "shared", "tenant_apps"):
        for path in (REPO_ROOT / top).rglob("*.py"):
            if "tests" in path.parts or path.name.startswith("test") or path.name == "testing.py":
                continue
            found = pattern.search(path.read_text())
            assert not found, f"{path.relative_to(REPO_ROOT)} imports {found[1]}, left out of the image"


def test_dockerignore_keeps_local_state_out():
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", ".data", ".env", "node_modules"} <= set(ignored)


def test_entrypoint_commands_exist():
    commands = entrypoint_commands()
    assert {"web", "ws", "worker", "beat", "migrate", "manage"} <= set(commands)
    for name, body in commands.items():
        for executable in re.findall(r"\bexec\s+([a-z][\w.-]*)", body):
            assert (VENV_BIN / executable).exists(), f"{name}: {executable} is not installed"
        # module:attribute application paths
        for module, attribute in re.findall(r"\b([a-z_]+(?:\.[a-z_]+)+):([a-z_]+)\b", body):
            source = REPO_ROOT / Path(*module.split(".")).with_suffix(".py")
            assert source.is_file(), f"{name}: no module {module}"
            assigned = {
                target.id
                for node in ast.walk(ast.parse(source.read_text()))
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            assert attribute in assigned, f"{name}: {module} defines no {attribute}"
        for command in re.findall(r"manage\.py\s+([a-z_]+)", body):
            assert command in get_commands(), f"{name}: no manage.py command {command}"
        for app in re.findall(r"--app\s+(\S+)", body):
            celery_app = __import__(app).celery_app
            assert celery_app.main == "peerlearn"
        for config in re.findall(r"--config\s+(\S+)", body):
            assert (REPO_ROOT / config).is_file()
    assert "migrate_schemas" in commands["migrate"]
    assert "config.wsgi:application" in commands["web"] and "gunicorn" in commands["web"]
    assert "config.asgi:application" in commands["ws"] and "daphne" in commands["ws"]
    assert re.search(r"--port\s+8001\b", commands["ws"])


def test_gunicorn_settings_are_gunicorn_settings():
    from gunicorn.config import Config

    known = set(Config().settings)
    names = {
        target.id
        for node in ast.parse(GUNICORN_CONF.read_text()).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert names and names <= known, f"not gunicorn settings: {names - known}"
    namespace: dict = {}
    exec(compile(GUNICORN_CONF.read_text(), str(GUNICORN_CONF), "exec"), namespace)
    assert namespace["bind"].rsplit(":", 1)[1] == str(PROCESS_PORTS["web"])
    assert namespace["worker_class"] == "sync"


# --- Ports ------------------------------------------------------------------------------------------


def test_ports_agree_everywhere():
    assert dockerfile_exposed("app") == set(PROCESS_PORTS.values())
    assert dockerfile_exposed("nginx") == {80, 443}
    services = compose()["services"]
    for name, port in PROCESS_PORTS.items():
        assert [int(p) for p in services[name]["expose"]] == [port]
        assert f"127.0.0.1:{port}/" in " ".join(services[name]["healthcheck"]["test"])
    upstreams = nginx_upstreams()
    assert upstreams == {"peerlearn_web": [("web", 8000)], "peerlearn_ws": [("ws", 8001)]}
    for servers in upstreams.values():
        for host, port in servers:
            assert host in services and PROCESS_PORTS[host] == port
    for workload in k8s_kind("Deployment"):
        for container in containers(workload):
            command = container["args"][0]
            ports = {p["containerPort"] for p in container.get("ports", [])}
            assert ports == ({PROCESS_PORTS[command]} if command in PROCESS_PORTS else set())


# --- Compose ----------------------------------------------------------------------------------------


def test_compose_services_and_order():
    services = compose()["services"]
    assert set(services) == APP_SERVICES | {"postgres", "redis", "nginx"}
    commands = entrypoint_commands()
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["build"]["target"] == "app"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["command"][0] in commands
        assert service["command"][0] == name
        assert service["read_only"] is True
        if name != "migrate":
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["restart"] == "no"
    assert services["beat"]["deploy"]["replicas"] == 1
    assert services["nginx"]["build"]["target"] == "nginx"
    assert {"80:80", "443:443"} == set(services["nginx"]["ports"])
    # Health checks use the application's own endpoints.
    for name in ("web", "ws"):
        test = " ".join(services[name]["healthcheck"]["test"])
        assert re.search(r"/(healthz|readyz)'", test)


def test_compose_env_file_is_the_example_format():
    services = compose()["services"]
    assert ENV_EXAMPLE.is_file(), "deploy/production.env.example is missing"
    for name in APP_SERVICES:
        assert services[name]["env_file"] == ["production.env"]


def test_health_endpoints_are_routed():
    for path in HEALTH_PATHS:
        for urlconf in (settings.ROOT_URLCONF, settings.PUBLIC_SCHEMA_URLCONF):
            try:
                resolve(path, urlconf=urlconf)
            except Resolver404:
                pytest.fail(f"{path} is not in {urlconf}")


# --- Environment variables ---------------------------------------------------------------------------


def _env_file_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#") and "=" in line and re.match(r"#\s*[A-Z][A-Z0-9_]*=", line):
            line = line.lstrip("#").strip()  # commented-out optional settings count too
        match = re.match(r"([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match[1])
    return names


def test_every_variable_set_is_read():
    allowed = allowed_env()
    services = compose()["services"]
    where: dict[str, set[str]] = {}
    for name in APP_SERVICES:
        where[f"compose {name}"] = set(services[name].get("environment") or {})
    where["compose nginx"] = set(services["nginx"]["environment"])
    for doc in k8s_kind("ConfigMap") + k8s_kind("Secret"):
        where[f"k8s {doc['metadata']['name']}"] = set(doc.get("data") or {}) | set(
            doc.get("stringData") or {}
        )
    for workload in workloads():
        for container in containers(workload):
            where[f"k8s {workload['metadata']['name']}"] = {e["name"] for e in container.get("env", [])}
    dockerfile_env = set()
    for match in re.finditer(r"^ENV\s+(.*?)(?<!\\)$", DOCKERFILE.read_text(), re.MULTILINE | re.DOTALL):
        dockerfile_env |= set(re.findall(r"([A-Z][A-Z0-9_]*)=", match[1]))
    where["Dockerfile ENV"] = dockerfile_env - {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
    where["production.env.example"] = _env_file_names(ENV_EXAMPLE)
    unread = {place: sorted(names - allowed) for place, names in where.items() if names - allowed}
    assert not unread, f"set but read by nothing: {unread}"
    # The nginx image fills only this one into its template.
    assert set(re.findall(r"\$\{([A-Z_]+)\}", NGINX_CONF.read_text())) == {"PLATFORM_DOMAIN"}


def test_configmap_and_secret_cover_what_production_requires():
    config = k8s_kind("ConfigMap")[0]["data"]
    secret = k8s_kind("Secret")[0]["stringData"]
    assert not set(config) & set(secret)
    required = {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "PLATFORM_DOMAIN"}
    assert required <= set(config) | set(secret)
    assert {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL"} <= set(secret)
    assert config["DJANGO_SETTINGS_MODULE"] == "config.settings.production"


# --- Kubernetes ---------------------------------------------------------------------------------------


def test_k8s_documents_are_namespace_agnostic_and_complete():
    documents = k8s_documents()
    assert documents
    for path, doc in documents:
        assert {"apiVersion", "kind"} <= set(doc), path.name
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"], path.name
            assert "namespace" not in doc["metadata"], f"{path.name}: {doc['metadata']['name']}"
    kustomization = k8s_kind("Kustomization")[0]
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file()
    listed = set(kustomization["resources"])
    left_out = {p.name for p in K8S.glob("*.yaml")} - listed - {"kustomization.yaml"}
    assert left_out == {"migrate-job.yaml", "secret.example.yaml"}


def test_k8s_workloads():
    commands = entrypoint_commands()
    by_command = {}
    config_maps = {doc["metadata"]["name"] for doc in k8s_kind("ConfigMap")}
    secrets_ = {doc["metadata"]["name"] for doc in k8s_kind("Secret")}
    claims = {doc["metadata"]["name"] for doc in k8s_kind("PersistentVolumeClaim")}
    for workload in workloads():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in containers(workload):
            command = container["args"][0]
            assert command in commands
            by_command[command] = workload
            image = container["image"]
            assert image == "peerlearn" or re.fullmatch(r"[\w.-]+(/[\w.-]+)*/peerlearn:[\w.-]+", image)
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"]
            assert resources["limits"]["memory"]
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets_
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
            port_names = {p["name"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                get = container.get(probe, {}).get("httpGet")
                if get:
                    assert get["path"] in HEALTH_PATHS
                    assert get["port"] in port_names
            if command in PROCESS_PORTS:
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            for probe in ("livenessProbe",):
                exec_ = container.get(probe, {}).get("exec")
                if exec_:
                    assert "celery --app config " in " ".join(exec_["command"])
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    assert set(by_command) == {"web", "ws", "worker", "beat", "migrate"}
    beat = by_command["beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert by_command["migrate"]["kind"] == "Job"
    assert by_command["migrate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def _selects(selector: dict, workload: dict) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


def test_k8s_services_ingress_hpa_pdb_point_at_real_things():
    deployments = k8s_kind("Deployment")
    services = {doc["metadata"]["name"]: doc for doc in k8s_kind("Service")}
    service_ports: dict[str, set[str]] = {}
    for name, service in services.items():
        selected = [d for d in deployments if _selects(service["spec"]["selector"], d)]
        assert len(selected) == 1, name
        container_ports = {
            p["name"]: p["containerPort"] for c in containers(selected[0]) for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, f"{name}: {port['targetPort']}"
        service_ports[name] = {p["name"] for p in service["spec"]["ports"]}
    routes: dict[str, str] = {}
    for ingress in k8s_kind("Ingress"):
        assert ingress["spec"]["tls"][0]["secretName"]
        hosts = [rule.get("host") for rule in ingress["spec"]["rules"]]
        assert any(host and host.startswith("*.") for host in hosts), "a wildcard host"
        assert None in hosts, "a rule for every other host (institutions' own domains)"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services
                assert backend["port"]["name"] in service_ports[backend["name"]]
                routes[path["path"]] = backend["name"]
    assert routes == {"/": "peerlearn-web", "/ws/": "peerlearn-ws"}
    names = {d["metadata"]["name"] for d in deployments}
    for hpa in k8s_kind("HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in names
        assert hpa["spec"]["minReplicas"] >= 2
    budgets = k8s_kind("PodDisruptionBudget")
    assert {"peerlearn-web", "peerlearn-ws"} <= {b["metadata"]["name"] for b in budgets}
    for budget in budgets:
        assert any(_selects(budget["spec"]["selector"]["matchLabels"], d) for d in deployments)


# --- nginx ------------------------------------------------------------------------------------------


def _nginx_text() -> str:
    """The configuration without comments and quoted strings (braces in them do not count)."""
    lines = [re.sub(r"(^|\s)#.*$", "", line) for line in NGINX_CONF.read_text().splitlines()]
    return re.sub(r"\"[^\"]*\"|'[^']*'", '""', "\n".join(lines))


def nginx_upstreams() -> dict[str, list[tuple[str, int]]]:
    upstreams = {}
    for name, body in re.findall(r"upstream\s+(\S+)\s*\{([^}]*)\}", _nginx_text()):
        upstreams[name] = [(host, int(port)) for host, port in re.findall(r"server\s+([\w.-]+):(\d+)", body)]
    return upstreams


def _nginx_blocks(text: str, head: str) -> list[str]:
    """The bodies of the blocks whose header matches `head` (a regex), with nested blocks."""
    bodies = []
    for match in re.finditer(head + r"\s*\{", text):
        depth, start = 1, match.end()
        position = start
        while depth:
            char = text[position]
            depth += {"{": 1, "}": -1}.get(char, 0)
            position += 1
        bodies.append(text[start : position - 1])
    return bodies


def test_nginx_configuration():
    text = _nginx_text()
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0, "a } without its {"
    assert depth == 0, "unbalanced braces"
    # A statement runs over several lines only to continue a string (log_format).
    for statement in re.split(r"[;{}]", text):
        lines = [line.strip() for line in statement.strip().splitlines() if line.strip()]
        for line in lines[1:]:
            assert line.startswith('""'), f"directive without ';' before: {line}"
    upstreams = nginx_upstreams()
    referenced = set(re.findall(r"proxy_pass\s+https?://([\w.-]+)", text))
    assert referenced == set(upstreams)
    # Every server name goes to the platform: a default server on 80 and on 443.
    servers = _nginx_blocks(text, r"\bserver")
    assert any(re.search(r"listen\s+443\s+ssl\s+default_server", s) for s in servers)
    assert any(re.search(r"listen\s+80\s+default_server", s) for s in servers)
    tls = next(s for s in servers if "listen 443" in s)
    assert re.search(r"server_name\s+\$\{PLATFORM_DOMAIN\}\s+\*\.\$\{PLATFORM_DOMAIN\}\s+_;", tls)
    ws = _nginx_blocks(tls, r"location\s+/ws/")[0]
    web = _nginx_blocks(tls, r"location\s+/")[0]
    assert "proxy_pass http://peerlearn_ws;" in ws and "proxy_pass http://peerlearn_web;" in web
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    assert "proxy_set_header Connection $connection_upgrade;" in ws
    for location in (ws, web):
        # A location that sets any proxy header inherits none: each sets all of them.
        for header in ("Host", "X-Forwarded-Proto", "X-Forwarded-For", "X-Request-ID"):
            assert re.search(rf"proxy_set_header\s+{header}\s", location), header
        assert "proxy_set_header X-Forwarded-Proto $scheme;" in location
    static = _nginx_blocks(tls, r"location\s+/static/")[0]
    assert re.search(r"alias\s+/srv/peerlearn/static/;", static)
    assert "/srv/peerlearn/static" in (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    body = re.search(r"client_max_body_size\s+(\d+)m;", tls)
    assert body and int(body[1]) * 1024 * 1024 >= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert re.search(r"proxy_read_timeout\s+\d+[sm]?;", web)


# --- The WSGI entry point, served as the `web` container serves it -------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, host: str, path: str, *, https: bool = True) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host, "X-Request-ID": "deploy-test-0001"}
    if https:
        headers["X-Forwarded-Proto"] = "https"
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode(errors="replace")
    finally:
        conn.close()


@pytest.fixture
def gunicorn_web(test_database, _institutions, tmp_path):
    from tests.conftest import _database_url

    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": _database_url(test_database),
        "REDIS_URL": os.environ.get("REDIS_URL", settings.REDIS_URL),
        "PLATFORM_DOMAIN": settings.PLATFORM_DOMAIN,
        "WEB_CONCURRENCY": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "--config",
                str(GUNICORN_CONF),
                "--bind",
                f"127.0.0.1:{port}",
                "config.wsgi:application",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(port, "10.0.0.1", "/healthz", https=False)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log_path.read_text()[-4000:]}", pytrace=False)
            time.sleep(0.2)
        yield port, _institutions[0]
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_gunicorn_serves_the_wsgi_application_with_institution_hosts(gunicorn_web):
    port, institution = gunicorn_web
    # Probes by IP address over plain HTTP: no redirect, no host lookup.
    assert _get(port, "10.0.0.1", "/healthz", https=False)[0] == 200
    status, _, body = _get(port, "10.0.0.1", "/readyz", https=False)
    assert status == 200, body
    # An institution's host is resolved by the institution middleware and served.
    host = f"{institution.slug}.{settings.PLATFORM_DOMAIN}"
    status, headers, body = _get(port, host, "/")
    assert status in (200, 302), body[:500]
    # The proxy's request id is kept and echoed (nginx's map accepts what the application does).
    assert headers.get("X-Request-ID") == "deploy-test-0001"
    # An unknown host gets the unknown-host page, not a view.
    status, _, body = _get(port, "nobody-here.example", "/")
    assert status == 404
    # Plain HTTP through the proxy is sent to HTTPS.
    status, headers, _ = _get(port, host, "/", https=False)
    assert status == 301 and headers["Location"].startswith(f"https://{host}")

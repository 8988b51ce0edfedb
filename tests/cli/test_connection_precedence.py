"""Where the CLI sends the account key: flags, then ``OPENRR_*`` variables, then arrconfig.json files, for
every field, the token (STS) endpoint included. HTTP listeners on loopback record which one got the key."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from openrr.cli.connection import resolve
from openrr.cli.main import cli

ACCOUNT = "acc-1"


class Listener:
    """A tiny ARR look-alike: it issues a token for any key and lists one page of sessions, recording every
    request's path and Authorization header."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[tuple[str, str]] = []
        self.next_link: str | None = None
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                listener.requests.append((self.path, self.headers.get("Authorization", "")))
                path = urlsplit(self.path).path
                if path.endswith("/token"):
                    body: dict[str, Any] = {"AccessToken": f"token-from-{listener.name}"}
                else:
                    body = {"sessions": [{"id": f"on-{listener.name}", "status": "Ready"}]}
                    if listener.next_link and "skipToken" not in self.path:
                        body["@nextLink"] = listener.next_link
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def keys(self) -> list[str]:
        """The account keys this listener was sent (token requests carry ``Bearer id:key``)."""
        return [auth.split(":", 1)[1] for path, auth in self.requests if path.endswith("/token")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def listeners() -> Iterator[dict[str, Listener]]:
    made = {name: Listener(name) for name in ("file", "filests", "flag", "env", "sts")}
    yield made
    for listener in made.values():
        listener.close()


def write_config(path: Path, endpoint: str | None, domain: str | None, key: str = "file-key") -> Path:
    account: dict[str, Any] = {"arrAccountId": ACCOUNT, "arrAccountKey": key}
    if domain:
        account["arrAccountDomain"] = domain
    rendering = {"remoteRenderingDomain": endpoint} if endpoint else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"accountSettings": account, "renderingSessionSettings": rendering}))
    return path


URL = {"file", "filests", "flag", "env", "sts"}


def expand(values: list[str], urls: dict[str, str]) -> list[str]:
    return [urls[v[1:]] if v.startswith("@") and v[1:] in URL else v for v in values]


# Each case: the config file's endpoint and account domain (listener names, or None), flags, variables, then
# which listener must get the token request and with which key, and which one the session list.
CASES: list[tuple[str, str | None, str | None, list[str], dict[str, str], str, str, str]] = [
    # name, file endpoint, file domain, flags, env, STS that gets the key, the key, session API
    ("file alone", "file", "filests", [], {}, "filests", "file-key", "file"),
    ("file without a domain", "file", None, [], {}, "file", "file-key", "file"),
    (
        "flag endpoint and key beat the file, token too",
        "file",
        "filests",
        ["--endpoint", "@flag", "--account-id", ACCOUNT, "--account-key", "flag-key"],
        {},
        "flag",
        "flag-key",
        "flag",
    ),
    (
        "variables beat the file, token too",
        "file",
        "filests",
        [],
        {"OPENRR_ENDPOINT": "@env", "OPENRR_ACCOUNT_KEY": "env-key"},
        "env",
        "env-key",
        "env",
    ),
    (
        "flags beat variables",
        "file",
        "filests",
        ["--endpoint", "@flag", "--account-key", "flag-key"],
        {"OPENRR_ENDPOINT": "@env", "OPENRR_ACCOUNT_KEY": "env-key"},
        "flag",
        "flag-key",
        "flag",
    ),
    (
        "a variable key beats the file key at the file's own service",
        "file",
        "filests",
        [],
        {"OPENRR_ACCOUNT_KEY": "env-key"},
        "filests",
        "env-key",
        "file",
    ),
    (
        "the file's own endpoint named as a flag keeps the file's domain and key",
        "file",
        "filests",
        ["--endpoint", "@file"],
        {},
        "filests",
        "file-key",
        "file",
    ),
    (
        "--account-domain beats everything for the token",
        "file",
        "filests",
        ["--endpoint", "@flag", "--account-key", "flag-key", "--account-domain", "@sts"],
        {"OPENRR_ACCOUNT_DOMAIN": "@env"},
        "sts",
        "flag-key",
        "flag",
    ),
    (
        "OPENRR_ACCOUNT_DOMAIN beats the file's domain",
        "file",
        "filests",
        [],
        {"OPENRR_ACCOUNT_DOMAIN": "@sts", "OPENRR_ACCOUNT_KEY": "env-key"},
        "sts",
        "env-key",
        "file",
    ),
    (
        "a file that names no service lends its key to the named endpoint",
        None,
        None,
        ["--endpoint", "@flag"],
        {},
        "flag",
        "file-key",
        "flag",
    ),
    (
        "no file at all",
        None,
        None,
        ["--endpoint", "@flag", "--account-id", ACCOUNT, "--account-key", "flag-key"],
        {},
        "flag",
        "flag-key",
        "flag",
    ),
]


@pytest.fixture
def runner_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean working directory and no connection variables but those a case sets."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def run(args: list[str], env: dict[str, str]) -> Any:
    names = (
        "OPENRR_CONFIG",
        "OPENRR_ENDPOINT",
        "OPENRR_ACCOUNT_ID",
        "OPENRR_ACCOUNT_KEY",
        "OPENRR_ACCOUNT_DOMAIN",
        "OPENRR_CA_CERT",
        "SSL_CERT_FILE",
    )
    full: dict[str, str | None] = {name: None for name in names}
    full.update(env)
    return CliRunner(env=full).invoke(cli, ["sessions", "list", "--json", *args])


@pytest.mark.parametrize(
    ("file_endpoint", "file_domain", "flags", "env", "sts", "key", "api"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_key_goes_only_where_the_user_said(
    listeners: dict[str, Listener],
    runner_env: Path,
    file_endpoint: str | None,
    file_domain: str | None,
    flags: list[str],
    env: dict[str, str],
    sts: str,
    key: str,
    api: str,
) -> None:
    urls = {name: listener.url for name, listener in listeners.items()}
    # The file scripts/serve writes, where it writes it: the stray file of a clone that served.
    write_config(
        runner_env / "openrr-data" / "arrconfig.json",
        urls[file_endpoint] if file_endpoint else None,
        urls[file_domain] if file_domain else None,
    )
    env = {name: (urls[v[1:]] if v.startswith("@") else v) for name, v in env.items()}
    result = run(expand(flags, urls), env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"id": f"on-{api}", "status": "Ready"}]
    sent = {name: listener.keys() for name, listener in listeners.items() if listener.keys()}
    assert sent == {sts: [key]}
    assert [auth for _, auth in listeners[api].requests if not auth.startswith(f"Bearer {ACCOUNT}:")] == [
        f"Bearer token-from-{sts}"
    ]
    touched = {name for name, listener in listeners.items() if listener.requests}
    assert touched == {sts, api}


def test_a_files_key_is_not_sent_to_another_endpoint(
    listeners: dict[str, Listener], runner_env: Path
) -> None:
    urls = {name: listener.url for name, listener in listeners.items()}
    write_config(runner_env / "openrr-data" / "arrconfig.json", urls["file"], urls["filests"])
    for args, env in (
        (["--endpoint", urls["flag"]], {}),
        ([], {"OPENRR_ENDPOINT": urls["env"]}),
        (["--account-domain", urls["sts"]], {}),
    ):
        result = run(args, env)
        assert result.exit_code == 2, result.output
        assert f"the account key in openrr-data{'/'}arrconfig.json is for {urls['filests']}" in result.output
        assert "--account-key" in result.output
    assert not [listener.name for listener in listeners.values() if listener.requests]


def test_which_config_file_is_read(listeners: dict[str, Listener], runner_env: Path, tmp_path: Path) -> None:
    urls = {name: listener.url for name, listener in listeners.items()}
    write_config(runner_env / "openrr-data" / "arrconfig.json", urls["file"], None, key="data-dir-key")
    result = run([], {})
    assert result.exit_code == 0
    assert listeners["file"].keys() == ["data-dir-key"]
    # ./arrconfig.json comes before ./openrr-data/arrconfig.json
    write_config(runner_env / "arrconfig.json", urls["filests"], None, key="cwd-key")
    result = run([], {})
    assert result.exit_code == 0
    assert listeners["filests"].keys() == ["cwd-key"]
    # $OPENRR_CONFIG before both, and --config before the variable
    env_file = write_config(tmp_path / "env.json", urls["env"], None, key="env-file-key")
    flag_file = write_config(tmp_path / "flag.json", urls["flag"], None, key="flag-file-key")
    result = run([], {"OPENRR_CONFIG": str(env_file)})
    assert result.exit_code == 0
    assert listeners["env"].keys() == ["env-file-key"]
    result = run(["--config", str(flag_file)], {"OPENRR_CONFIG": str(env_file)})
    assert result.exit_code == 0
    assert listeners["flag"].keys() == ["flag-file-key"]
    assert listeners["env"].keys() == ["env-file-key"]
    assert not listeners["sts"].requests


def test_the_files_ca_certificate_goes_with_its_endpoint_only(runner_env: Path, tmp_path: Path) -> None:
    config = tmp_path / "arrconfig.json"
    config.write_text(
        json.dumps(
            {
                "accountSettings": {"arrAccountId": ACCOUNT, "arrAccountKey": "k"},
                "renderingSessionSettings": {"remoteRenderingDomain": "https://own.example:8443"},
                "openrr": {"caCertificate": "own-ca.pem"},
            }
        )
    )
    own = resolve(None, None, None, None, config)
    assert (own.endpoint, own.sts_endpoint, own.ca_cert) == ("https://own.example:8443",) * 2 + (
        "own-ca.pem",
    )
    other = resolve("https://other.example", None, "flag-key", None, config)
    assert (other.endpoint, other.sts_endpoint, other.ca_cert) == ("https://other.example",) * 2 + (None,)
    flagged = resolve("https://other.example", None, "flag-key", "mine.pem", config)
    assert flagged.ca_cert == "mine.pem"


def test_a_next_link_to_another_host_never_gets_the_token(
    listeners: dict[str, Listener], runner_env: Path
) -> None:
    flag, other = listeners["flag"], listeners["env"]
    flag.next_link = f"{other.url}/accounts/{ACCOUNT}/sessions?api-version=2021-01-01&$skipToken=s1"
    result = run(["--endpoint", flag.url, "--account-id", ACCOUNT, "--account-key", "k"], {})
    assert result.exit_code == 0, result.output
    assert [s["id"] for s in json.loads(result.stdout)] == ["on-flag", "on-flag"]
    assert not other.requests
    paths = [path for path, _ in flag.requests]
    assert paths[-1].endswith("$skipToken=s1") or "%24skipToken=s1" in paths[-1]


def test_the_account_id_follows_the_same_order(listeners: dict[str, Listener], runner_env: Path) -> None:
    listener = listeners["file"]
    write_config(runner_env / "openrr-data" / "arrconfig.json", listener.url, None)  # arrAccountId acc-1

    def token_paths() -> list[str]:
        return [path for path, _ in listener.requests if path.endswith("/token")]

    assert run([], {}).exit_code == 0
    assert run([], {"OPENRR_ACCOUNT_ID": "env-id"}).exit_code == 0
    assert run(["--account-id", "flag-id"], {"OPENRR_ACCOUNT_ID": "env-id"}).exit_code == 0
    ids = [path.split("/")[2] for path in token_paths()]
    assert ids == [ACCOUNT, "env-id", "flag-id"]

"""The model source policy: local files only under the roots, URLs only to public addresses."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openrr.model.sources import ModelSourcePolicy, SourceRefused
from openrr.protocol.handshake import RenderSettings, RenderSpec

PUBLIC_IP = "93.184.216.34"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.glb").write_bytes(b"glTF")
    (tmp_path / "secret.txt").write_text("secret")
    return root


@pytest.fixture
def policy(root: Path) -> ModelSourcePolicy:
    return ModelSourcePolicy(roots=(root,))


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Hostname → addresses, answered instead of the system resolver; unknown names do not resolve."""
    table: dict[str, list[str]] = {}

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in table[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def refused(policy: ModelSourcePolicy, source: str) -> str:
    with pytest.raises(SourceRefused) as info:
        policy.check(source)
    assert str(info.value) == info.value.message
    return info.value.message


# ---- local files ----------------------------------------------------------------------------------------
def test_paths_inside_the_root(policy: ModelSourcePolicy, root: Path) -> None:
    expected = str((root / "sub" / "a.glb").resolve())
    assert policy.check(str(root / "sub" / "a.glb")) == expected
    assert policy.check("sub/a.glb") == expected  # relative to the first root
    assert policy.check("./sub/../sub/a.glb") == expected
    # Existence is the loader's to report.
    assert policy.check("sub/missing.glb") == str((root / "sub" / "missing.glb").resolve())


def test_traversal_is_refused(policy: ModelSourcePolicy, root: Path) -> None:
    assert "outside" in refused(policy, "../secret.txt")
    assert "outside" in refused(policy, "sub/../../secret.txt")
    assert "outside" in refused(policy, str(root / ".." / "secret.txt"))
    assert "outside" in refused(policy, "/etc/passwd")
    # A sibling whose name merely starts with the root's is not inside it.
    assert "outside" in refused(policy, str(root) + "-other/a.glb")


def test_message_does_not_reveal_where_a_path_leads(policy: ModelSourcePolicy, root: Path) -> None:
    message = refused(policy, "../secret.txt")
    assert "'../secret.txt'" in message
    assert str(root) not in message


def test_symlink_out_of_the_root_is_refused(policy: ModelSourcePolicy, root: Path, tmp_path: Path) -> None:
    (root / "escape.glb").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path, target_is_directory=True)
    assert "outside" in refused(policy, "escape.glb")
    assert "outside" in refused(policy, "outdir/secret.txt")
    assert "outside" in refused(policy, f"file://{root}/escape.glb")


def test_symlinks_inside_the_root_and_a_symlinked_root(root: Path, tmp_path: Path) -> None:
    (root / "link.glb").symlink_to(root / "sub" / "a.glb")
    linked_root = tmp_path / "linked-models"
    linked_root.symlink_to(root, target_is_directory=True)
    policy = ModelSourcePolicy(roots=(linked_root,))
    expected = str((root / "sub" / "a.glb").resolve())
    assert policy.check("link.glb") == expected
    assert policy.check(str(linked_root / "sub" / "a.glb")) == expected


def test_symlink_loop_is_refused(policy: ModelSourcePolicy, root: Path) -> None:
    (root / "loop").symlink_to(root / "loop")
    refused(policy, "loop/a.glb")


def test_second_root(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "more"
    other.mkdir()
    policy = ModelSourcePolicy(roots=(root, other))
    assert policy.check(str(other / "b.glb")) == str((other / "b.glb").resolve())
    assert policy.check("b.glb") == str((root / "b.glb").resolve())  # relative: the first root only


def test_file_urls(policy: ModelSourcePolicy, root: Path) -> None:
    (root / "with space.glb").write_bytes(b"glTF")
    expected = str((root / "with space.glb").resolve())
    assert policy.check(f"file://{root}/with%20space.glb") == expected
    assert policy.check(f"file:{root}/with%20space.glb") == expected
    assert policy.check(f"FILE://localhost{root}/with%20space.glb") == expected
    assert "outside" in refused(policy, "file:///etc/passwd")
    assert "outside" in refused(policy, f"file://{root}/%2E%2E/secret.txt")  # decoded, then resolved
    assert "local path" in refused(policy, f"file://fileserver{root}/a.glb")
    assert "absolute" in refused(policy, "file:sub/a.glb")
    assert "NUL" in refused(policy, f"file://{root}/a%00.glb")


def test_windows_drive_is_a_path(policy: ModelSourcePolicy, root: Path) -> None:
    assert policy.check("C:\\models\\a.glb") == str((root / "C:\\models\\a.glb").resolve())
    assert policy.check("d:/x.glb") == str((root / "d:" / "x.glb").resolve())


def test_no_roots_refuses_every_file() -> None:
    policy = ModelSourcePolicy(roots=())
    for source in ("a.glb", "/srv/models/a.glb", "file:///srv/models/a.glb"):
        assert "--model-root" in refused(policy, source)
        assert "OPENRR_MODEL_ROOTS" in refused(policy, source)


@given(st.lists(st.sampled_from(["..", ".", "sub", "a.glb", "x", "/", "%2e%2e"]), min_size=1, max_size=8))
def test_whatever_is_accepted_lies_inside_a_root(parts: list[str]) -> None:
    root = Path("/srv/openrr-test-models")  # nothing needs to exist: resolution is lexical then
    policy = ModelSourcePolicy(roots=(root,))
    for source in ("/".join(parts), "file://" + str(root) + "/" + "/".join(parts)):
        try:
            accepted = Path(policy.check(source))
        except SourceRefused:
            continue
        assert accepted.is_absolute()
        assert accepted.is_relative_to(root)


# ---- URLs -----------------------------------------------------------------------------------------------
def test_public_literal_ip_needs_no_dns(policy: ModelSourcePolicy, dns: dict[str, list[str]]) -> None:
    for url in (
        f"http://{PUBLIC_IP}/m.glb",
        f"https://{PUBLIC_IP}:8443/m.glb?sv=1",
        "https://[2606:4700::1]/m",
    ):
        assert policy.check(url) == url


def test_public_hostname(policy: ModelSourcePolicy, dns: dict[str, list[str]]) -> None:
    dns["models.example"] = [PUBLIC_IP, "2606:4700::1"]
    url = "https://user:pass@models.example/a/m.glb?sig=abc"  # credentials are allowed (SAS-like)
    assert policy.check(url) == url


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "239.1.2.3",
        "240.0.0.1",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:10.0.0.1]",
        "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    ],
)
def test_non_public_addresses_are_refused(
    policy: ModelSourcePolicy, dns: dict[str, list[str]], host: str
) -> None:
    message = refused(policy, f"http://{host}:8080/m.glb")
    assert "not a public address" in message
    assert "--allow-private-model-urls" in message
    assert "OPENRR_ALLOW_PRIVATE_MODEL_URLS" in message
    allowed = ModelSourcePolicy(roots=(), allow_private_urls=True)
    assert allowed.check(f"http://{host}:8080/m.glb") == f"http://{host}:8080/m.glb"


def test_hostnames_are_judged_by_every_address(policy: ModelSourcePolicy, dns: dict[str, list[str]]) -> None:
    dns["localhost"] = ["127.0.0.1", "::1"]
    dns["mixed.example"] = [PUBLIC_IP, "10.1.2.3"]
    dns["odd-ipv4.example"] = ["127.0.0.1"]  # what "http://2130706433/" or "http://0x7f.1/" resolve to
    assert "10.1.2.3" in refused(policy, "https://mixed.example/m.glb")
    refused(policy, "http://localhost:8000/m.glb")
    refused(policy, "http://odd-ipv4.example/m.glb")
    allowed = ModelSourcePolicy(roots=(), allow_private_urls=True)
    assert allowed.check("http://localhost:8000/m.glb") == "http://localhost:8000/m.glb"


def test_real_resolver_refuses_loopback_names(policy: ModelSourcePolicy) -> None:
    # The system resolver, not a fake: these forms all reach 127.0.0.1 through inet_aton or /etc/hosts.
    for url in ("http://localhost/m.glb", "http://2130706433/m.glb", "http://0x7f.1/m.glb", "http://127.1/m"):
        refused(policy, url)  # a resolver without these forms refuses too: "cannot be resolved"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1\\@93.184.216.34/m.glb",
        "http://93.184.216.34#@127.0.0.1/m.glb",
        "http://a@127.0.0.1@93.184.216.34/m.glb",
        "http://93.184.216.34 @127.0.0.1/m.glb",
        "http://93.184.216.34%2f@127.0.0.1/m.glb",
        "http://93.184.216.34:80\\@10.0.0.1/m.glb",
    ],
)
def test_the_host_checked_is_the_host_httpx_connects_to(policy: ModelSourcePolicy, url: str) -> None:
    # Confusing URLs must not make the policy judge one host while the loader's client connects to another.
    import httpx

    public = ipaddress.ip_address(httpx.URL(url).host).is_global
    try:
        policy.check(url)
        accepted = True
    except SourceRefused:
        accepted = False
    assert accepted == public


def test_unresolvable_host(policy: ModelSourcePolicy) -> None:
    message = refused(policy, "https://models.invalid/m.glb?sig=secret")
    assert "cannot be resolved" in message
    assert "'https://models.invalid/m.glb'" in message
    # Allowing private addresses does not make an unknown host loadable.
    refused(ModelSourcePolicy(roots=(), allow_private_urls=True), "https://models.invalid/m.glb")


def test_messages_never_show_credentials_or_query(
    policy: ModelSourcePolicy, dns: dict[str, list[str]]
) -> None:
    for url in (
        "https://alice:hunter2@10.0.0.1/m.glb?sig=topsecret#frag",
        "https://alice:hunter2@models.invalid/m.glb?sig=topsecret",
        "https://alice:hunter2@10.0.0.1:99999/m.glb?sig=topsecret",
        "ftp://alice:hunter2@files.example/m.glb?sig=topsecret",
    ):
        message = refused(policy, url)
        for secret in ("alice", "hunter2", "topsecret", "frag"):
            assert secret not in message, (url, message)


def test_malformed_urls(policy: ModelSourcePolicy, dns: dict[str, list[str]]) -> None:
    assert "no host" in refused(policy, "http:///m.glb")
    assert "malformed" in refused(policy, "http://[::1/m.glb")
    assert "malformed" in refused(policy, f"http://{PUBLIC_IP}:99999/m.glb")


@pytest.mark.parametrize(
    "source",
    ["ftp://files.example/m.glb", "data:model/gltf+json;base64,e30=", "blob:https://x/1", "gopher://x/"],
)
def test_other_schemes_are_refused(policy: ModelSourcePolicy, source: str) -> None:
    message = refused(policy, source)
    assert message.startswith("unsupported model source scheme")
    assert source.split(":", 1)[1] not in message  # only the scheme is quoted


def test_empty_and_nul(policy: ModelSourcePolicy) -> None:
    assert "empty" in refused(policy, "")
    assert "empty" in refused(policy, "   ")
    assert "NUL" in refused(policy, "sub/a\x00.glb")


# ---- construction -------------------------------------------------------------------------------------
def test_from_spec_and_describe(root: Path) -> None:
    spec = RenderSpec(
        account_id="a",
        session_id="s",
        instance="i",
        size="standard",
        models=(),
        bind_host="127.0.0.1",
        advertise_host="127.0.0.1",
        teraflops=8.1,
        callback_url="https://127.0.0.1:8443/internal/render/a/s",
        callback_token="t",
        callback_ca=None,
        connect_secret="k",
        ready_deadline_s=60,
        settings=RenderSettings(
            model_roots=(str(root),), allow_private_model_urls=True, model_libraries=("/srv/library",)
        ),
    )
    policy = ModelSourcePolicy.from_spec(RenderSpec.from_json(spec.to_json()))
    # the session's account folder of each root, and the shared library
    assert policy == ModelSourcePolicy(
        roots=(root / "a",), allow_private_urls=True, library=(Path("/srv/library"),)
    )
    assert str(root / "a") in policy.describe()
    assert "any address" in policy.describe()
    # a pooled server's template has no account yet, and an id that is not one folder name gets no folder
    for account in ("", "..", "a/../b", "/abs"):
        blank = ModelSourcePolicy.from_spec(dataclasses.replace(spec, account_id=account))
        assert blank.roots == ()
        assert blank.library == (Path("/srv/library"),)
    closed = ModelSourcePolicy(roots=()).describe()
    assert "--model-root" in closed
    assert "public addresses only" in closed


# ---- accounts apart, and the shared library ------------------------------------------------------------
A = "6f1c1f3e-0b4d-4e8e-9d7c-1a2b3c4d5e6f"
B = "0b9e2a55-7d0c-4f65-8a3e-9f8e7d6c5b4a"


@pytest.fixture
def tenants(tmp_path: Path) -> tuple[Path, Path]:
    """A model root with the folders of accounts A and B, and a shared library."""
    root, library = tmp_path / "models", tmp_path / "library"
    for folder, name in ((root / A, "mine.glb"), (root / B, "theirs.glb"), (library, "shared.glb")):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"glTF")
    (library / "mine.glb").write_bytes(b"library copy")
    return root, library


def test_an_account_loads_its_own_folder_and_the_library_only(tenants: tuple[Path, Path]) -> None:
    root, library = tenants
    policy = ModelSourcePolicy(roots=(root / A,), library=(library,))
    assert policy.check("mine.glb") == str((root / A / "mine.glb").resolve())  # its own copy first
    assert policy.check("shared.glb") == str((library / "shared.glb").resolve())
    assert policy.check((library / "shared.glb").as_uri()) == str((library / "shared.glb").resolve())
    for other in (
        str(root / B / "theirs.glb"),  # by absolute path
        (root / B / "theirs.glb").as_uri(),
        f"../{B}/theirs.glb",  # climbing out of its own folder
        str(root / "x.glb"),  # the root above the account folders
    ):
        with pytest.raises(SourceRefused) as info:
            policy.check(other)
        assert B not in info.value.message.replace(other, "")  # the refusal names nothing it resolved to
    # a missing name is looked up in the account's folder: B's file of that name is not found through it
    assert policy.check("theirs.glb") == str((root / A / "theirs.glb").resolve())


def test_a_symlink_in_an_account_folder_to_another_account_is_refused(tenants: tuple[Path, Path]) -> None:
    root, library = tenants
    (root / A / "link.glb").symlink_to(root / B / "theirs.glb")
    (root / A / "dir").symlink_to(root / B, target_is_directory=True)
    policy = ModelSourcePolicy(roots=(root / A,), library=(library,))
    for source in ("link.glb", "dir/theirs.glb"):
        with pytest.raises(SourceRefused):
            policy.check(source)

"""Which model sources a render server may load: the guard in front of ``openrr.model.loader.load_model``.

Clients name models by URL or path, and the loader itself reads whatever it is given. Unchecked, a client
could read any file the server can (``/etc/shadow``, other sessions' models) or make the server fetch
internal addresses (SSRF: cloud metadata at 169.254.169.254, admin ports on localhost, the private network).
``ModelSourcePolicy.check`` allows:

- local files (plain paths and ``file:`` URLs) only inside the session's account folder of one of the
  configured roots (``--model-root ROOT``: ``ROOT/<accountId>/...``) or inside the shared read-only library
  (``--model-library DIR``), after resolving ``..`` and symlinks; relative paths are looked up in those
  folders in that order, and the first one holding the file is taken. Another account's folder is outside
  every root of this session: it can be neither loaded nor probed;
- http(s) URLs only when every address their host resolves to is public, unless private addresses are
  allowed (``--allow-private-model-urls``, for models served from the operator's own network).

Everything else (``ftp:``, ``data:``, ``blob:``…) is refused. Refusals raise ``SourceRefused``, whose
message is fit for the client: it never repeats a URL's credentials or query string (SAS tokens live there),
and never the server-side location a path resolved to.

What a single up-front check cannot cover, and the loader does: HTTP redirects and the URLs a .gltf
references are new requests, each checked again (``guard``); and a hostname may resolve differently when
the loader connects (DNS rebinding). ``guard`` therefore returns a ``CheckedURL`` with the addresses it
checked, and the loader connects to exactly those (``openrr.model.fetch``), never resolving the name again.
Names are resolved with ``resolver`` (blocking ``socket.getaddrinfo`` by default, a seam for tests): call
``check`` and ``guard`` off the event loop.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from openrr.protocol.builtin_models import is_builtin

if TYPE_CHECKING:
    from openrr.protocol.handshake import RenderSpec

# A URL scheme, as RFC 3986 spells it, but of two letters or more: "C:\models\a.glb" is a Windows-style
# drive, which on Linux is just a relative path whose first part is "C:".
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+):")

_ROOTS_SETTING = "--model-root / OPENRR_MODEL_ROOTS"
_PRIVATE_SETTING = "--allow-private-model-urls / OPENRR_ALLOW_PRIVATE_MODEL_URLS"

# RFC 6052's well-known NAT64 prefix: an address in it stands for the IPv4 address in its last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to, as getaddrinfo gives them (strings).
Resolver = Callable[[str, int], list[str]]
_ACCOUNT_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for _family, _type, _proto, _name, sockaddr in infos]


@dataclass(frozen=True)
class CheckedURL:
    """An http(s) URL that passed the policy, with the addresses its host resolved to when it was checked:
    the only addresses a connection for it may go to."""

    url: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def account_roots(roots: tuple[Path, ...], account_id: str) -> tuple[Path, ...]:
    """Each root's folder of ``account_id``; none for an empty or unusable id (a pooled server's template
    has no account yet, and an id that is not one plain folder name must not become a path)."""
    if not _ACCOUNT_FOLDER.fullmatch(account_id) or account_id in (".", ".."):
        return ()
    return tuple(root / account_id for root in roots)


class SourceRefused(Exception):
    """A model source the policy does not allow; ``message`` says why, in words a client can show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ModelSourcePolicy:
    """Where models may be loaded from. ``roots``: directories local files must lie in (none: no local
    files at all); ``from_spec`` makes them the session's account folders. ``library``: shared directories
    every account may read. ``allow_private_urls``: let http(s) URLs reach loopback, private and other
    non-public addresses. ``resolver``: how host names are resolved (a seam for tests)."""

    roots: tuple[Path, ...]
    allow_private_urls: bool = False
    library: tuple[Path, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)

    @classmethod
    def from_spec(cls, spec: RenderSpec) -> ModelSourcePolicy:
        return cls(
            roots=account_roots(tuple(Path(root) for root in spec.settings.model_roots), spec.account_id),
            allow_private_urls=spec.settings.allow_private_model_urls,
            library=tuple(Path(folder) for folder in spec.settings.model_libraries),
        )

    @property
    def folders(self) -> tuple[Path, ...]:
        """Every directory local files may come from: the account's folders, then the library."""
        return self.roots + self.library

    def describe(self) -> str:
        """One line for the render server's log."""
        roots = (
            ", ".join(str(root) for root in self.folders)
            or f"none (local files refused; set {_ROOTS_SETTING})"
        )
        urls = "any address" if self.allow_private_urls else "public addresses only"
        return f"model sources: files under {roots}; http(s) URLs to {urls}"

    # ---- checks --------------------------------------------------------------------------------------------
    def check(self, source: str) -> str:
        """The source to hand to ``load_model`` (an absolute resolved path for a local file, an http(s) or
        ``builtin://`` URL unchanged), or SourceRefused."""
        if not source.strip():
            raise SourceRefused("the model source is empty")
        if "\x00" in source:
            raise SourceRefused("the model source contains a NUL character")
        if is_builtin(source):
            return source  # generated by the loader: no file or address to check
        match = _SCHEME.match(source)
        scheme = match.group(1).lower() if match else ""
        if scheme in ("http", "https"):
            return self.check_url(source)
        if scheme == "file":
            return self.check_path(_file_url_path(source), quoted=quote_url(source))
        if scheme:
            # Only the scheme is quoted: the rest may be a whole data: payload or carry credentials.
            raise SourceRefused(
                f"unsupported model source scheme {scheme + ':'!r}: use a path under a model root, "
                "a file: URL or an http(s) URL"
            )
        return self.check_path(source)

    def check_path(self, path: str | Path, *, quoted: str | None = None) -> str:
        """The resolved absolute path of a local model file, if it lies inside a root (existence is not
        checked: the loader reports missing files). ``quoted`` names the source in messages."""
        name = quoted if quoted is not None else repr(str(path))
        folders = self.folders
        if not folders:
            raise SourceRefused(
                f"model {name} refused: this service loads no local files (the operator can allow a "
                f"directory with {_ROOTS_SETTING})"
            )
        candidate = Path(path)
        if not candidate.is_absolute():
            # The account's own folders first, then the library: the first that holds the file.
            places = [folder / candidate for folder in folders]
            candidate = next((p for p in places if p.is_file()), places[0])
        try:
            # Resolving symlinks before the containment test is what stops a link inside a root from
            # pointing out of it; "strict=False" because a missing file is the loader's to report.
            resolved = candidate.resolve(strict=False)
            roots = [root.resolve(strict=False) for root in folders]
        except (OSError, RuntimeError, ValueError):  # symlink loops: RuntimeError before 3.13
            # The exception is not quoted: it names the server-side path the source led to.
            raise SourceRefused(
                f"model {name} refused: the path cannot be resolved (a symlink loop?)"
            ) from None
        if not any(resolved.is_relative_to(root) for root in roots):
            # The resolved target is not named: it would tell the client about the server's files.
            raise SourceRefused(f"model {name} refused: it is outside the directories models may come from")
        return str(resolved)

    def check_url(self, url: str) -> str:
        """``url`` unchanged if it is an http(s) URL whose host resolves only to allowed addresses."""
        return self.pin_url(url).url

    def guard(self, location: str) -> str | CheckedURL:
        """What the loader calls before each request and local file: a CheckedURL (the addresses to
        connect to) for an http(s) URL, the resolved path for a local file; SourceRefused otherwise."""
        match = _SCHEME.match(location)
        if match and match.group(1).lower() in ("http", "https"):
            return self.pin_url(location)
        return self.check(location)

    def guard_after(self, checked: str | CheckedURL) -> Callable[[str], str | CheckedURL]:
        """``guard`` for a load whose source was just checked: its first request for that URL uses
        ``checked`` (one lookup, the one that was judged); every other request is checked anew."""
        first = {checked.url: checked} if isinstance(checked, CheckedURL) else {}

        def guard(location: str) -> str | CheckedURL:
            done = first.pop(location, None)
            return done if done is not None else self.guard(location)

        return guard

    def pin_url(self, url: str) -> CheckedURL:
        """Check an http(s) URL; the result names the addresses that passed, which connections must use."""
        quoted = quote_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:  # a bad port or a malformed IPv6 literal
            raise SourceRefused(f"model URL {quoted} is malformed: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise SourceRefused(f"model URL {quoted} refused: only http(s) URLs are allowed")
        host = parts.hostname
        if not host:
            raise SourceRefused(f"model URL {quoted} has no host")
        port = port or (443 if scheme == "https" else 80)
        addresses = _resolve(self.resolver, host, port, quoted)
        if not self.allow_private_urls:
            for address in addresses:
                if not _is_public(address):
                    raise SourceRefused(
                        f"model URL {quoted} refused: its host resolves to {address}, which is not a public "
                        f"address (the operator can allow private addresses with {_PRIVATE_SETTING})"
                    )
        return CheckedURL(url, host, port, tuple(addresses))


def _file_url_path(url: str) -> str:
    """The local path of a ``file:`` URL (``file:///p``, ``file:/p``, ``file://localhost/p``), decoded."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise SourceRefused(f"model URL {quote_url(url)} refused: file: URLs must name a local path")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise SourceRefused(f"model URL {quote_url(url)} refused: a file: URL needs an absolute path")
    if "\x00" in path:
        raise SourceRefused("the model source contains a NUL character")
    return path


def quote_url(url: str) -> str:
    """The URL as messages may show it: no user info, query or fragment (where SAS tokens live)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(malformed URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    absolute = parts.netloc or (parts.scheme == "file" and parts.path.startswith("/"))
    shown = f"{parts.scheme}://{netloc}{parts.path}" if absolute else f"{parts.scheme}:{parts.path}"
    return repr(shown)


def _resolve(resolver: Resolver, host: str, port: int, quoted: str) -> list[IPAddress]:
    try:
        # A literal needs no DNS, and must not depend on one.
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = resolver(host, port)
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError; IDNA failures are UnicodeErrors
        raise SourceRefused(f"model URL {quoted} refused: its host cannot be resolved ({exc})") from None
    addresses: list[IPAddress] = []
    for text in found:
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            # Not an IP address (an exotic family): what cannot be judged is not allowed.
            raise SourceRefused(
                f"model URL {quoted} refused: its host resolves to an unknown address"
            ) from None
    if not addresses:
        raise SourceRefused(f"model URL {quoted} refused: its host resolves to no address")
    return addresses


def _is_public(address: IPAddress) -> bool:
    """Whether ``address`` is globally reachable, including the IPv4 address an IPv6 one may stand for."""
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4-mapped (::ffff:127.0.0.1), 6to4 (2002:7f00:1::) and NAT64 (64:ff9b::7f00:1) addresses
        # reach the IPv4 address inside them; Teredo embeds the server's.
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo is not None:
            embedded.append(address.teredo[0])
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(inner is not None and not _is_public(inner) for inner in embedded):
            return False
        if address.ipv4_mapped is not None:
            return True  # the mapped address decided; ::ffff:0:0/96 itself is never "global"
    # is_global alone is not enough: Python counts multicast and some reserved ranges as global.
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
    )


def display_name(url: str) -> str:
    """A model location without credentials or query string (a SAS token must not reach logs or ids)."""
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https"):
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    return url

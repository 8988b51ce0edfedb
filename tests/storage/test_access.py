"""Which containers the service may use, with which credential; linked storage account settings."""

from __future__ import annotations

import pytest

from openrr.config.settings import Settings
from openrr.errors import InvalidInput
from openrr.storage import LinkedAccount, NoAccess, StorageAccess, parse_linked_account
from openrr.storage.blob import BlobContainer, normalise_sas

KEY = "a2V5a2V5a2V5+/=="
AZURITE = "http://127.0.0.1:10000/devstoreaccount1"


def test_parse_linked_account() -> None:
    assert parse_linked_account(f"acct1=={KEY}") == LinkedAccount("acct1", f"={KEY}", "")
    assert parse_linked_account(f"acct1={KEY}") == LinkedAccount("acct1", KEY, "")
    assert parse_linked_account(f"devstoreaccount1={KEY}@{AZURITE}/").endpoint == AZURITE
    sas_only = parse_linked_account(f"devstoreaccount1@{AZURITE}")
    assert sas_only.key is None
    assert sas_only.blob_endpoint == AZURITE
    assert LinkedAccount("acct1", KEY).blob_endpoint == "https://acct1.blob.core.windows.net"
    assert KEY not in repr(LinkedAccount("acct1", KEY))
    assert KEY not in str(LinkedAccount("acct1", KEY))
    for bad in ("Upper=key", "ab=key", "acct1", "acct1=", f"acct1={KEY}@ftp://x", f"acct1={KEY}@http://h/?q"):
        with pytest.raises(ValueError, match=r"account name|key of|give NAME=KEY|endpoint of") as info:
            parse_linked_account(bad)
        assert KEY not in str(info.value)


def test_settings_report_bad_accounts_without_their_keys() -> None:
    with pytest.raises(InvalidInput) as info:
        Settings.load({"storage_accounts": (f"acct1@{AZURITE}", "x=SECRETKEY")})
    assert "--storage-account" in info.value.message
    assert "entry 2" in info.value.message
    assert "SECRETKEY" not in info.value.message
    with pytest.raises(InvalidInput):
        Settings.load({"storage_accounts": (f"acct1@{AZURITE}", f"acct1@{AZURITE}/x")})
    settings = Settings.load({"storage_accounts": (f"devstoreaccount1@{AZURITE}",)})
    assert settings.conversions.linked_accounts == (LinkedAccount("devstoreaccount1", None, AZURITE),)


@pytest.mark.parametrize("entry", [f"acct1={KEY}", f"devstoreaccount1={KEY}@{AZURITE}"])
def test_a_service_wide_key_is_refused_at_start_with_how_to_link_it(entry: str) -> None:
    """The old --storage-account NAME=KEY gave every account the storage: refused, never kept silently."""
    with pytest.raises(InvalidInput) as info:
        Settings.load({"storage_accounts": (entry,)})
    message = info.value.message
    assert "--storage-account" in message
    assert "openrr accounts link-storage ACCOUNT" in message
    assert KEY not in message
    with pytest.raises(ValueError, match="cannot have a key"):
        StorageAccess(accounts=(parse_linked_account(entry),))


ACCOUNT = "6f1c1f3e-0b4d-4e8e-9d7c-1a2b3c4d5e6f"


def test_which_credential() -> None:
    service = StorageAccess(accounts=(LinkedAccount("devstoreaccount1", None, AZURITE),))
    mine = (LinkedAccount("linked", KEY),)

    def open_(uri: str, sas: str | None) -> object:
        return service.open(uri, sas, account_id=ACCOUNT, linked=mine)

    # Azure, with a SAS; linked to the caller, with or without one
    sas = open_("https://acct1.blob.core.windows.net/input", "?sv=1&sig=x")
    assert isinstance(sas, BlobContainer)
    assert sas.uri == "https://acct1.blob.core.windows.net/input"
    assert isinstance(open_("https://linked.blob.core.windows.net/input/", None), BlobContainer)
    assert isinstance(open_(f"{AZURITE}/input", "sv=1&sig=x"), BlobContainer)
    # the same storage, for an account it is not linked to: a SAS is needed
    with pytest.raises(NoAccess):
        service.open("https://linked.blob.core.windows.net/input", None, account_id=ACCOUNT)
    refused = [
        ("https://acct1.blob.core.windows.net/input", None),  # not linked, no SAS
        (f"{AZURITE}/input", None),  # configured without a key
        ("http://acct1.blob.core.windows.net/input", "sv=1"),  # Azure over plain http
        ("https://acct1.blob.core.windows.net:444/input", "sv=1"),
        ("https://evil.example.com/input", "sv=1"),  # an endpoint the service does not know
        ("http://169.254.169.254/latest", "sv=1"),
        ("http://127.0.0.1:10000/otheraccount/input", "sv=1"),
        ("https://acct1.blob.core.windows.net/input/sub", "sv=1"),  # not one container
        ("https://acct1.blob.core.windows.net/IN", "sv=1"),
        ("https://acct1.blob.core.windows.net/input?sv=1", None),
        ("ftp://acct1.blob.core.windows.net/input", "sv=1"),
    ]
    for uri, given in refused:
        with pytest.raises(NoAccess):
            open_(uri, given)


def test_normalise_sas() -> None:
    assert normalise_sas("?sv=1&sig=2") == "sv=1&sig=2"
    assert normalise_sas(" sv=1&sig=2 ") == "sv=1&sig=2"
    assert normalise_sas("https://a.blob.core.windows.net/c?sv=1&sig=2") == "sv=1&sig=2"

"""Settings of conversions: where their containers may be (openrr.storage), and the workers that run them.

Declared as in ``openrr.config.control_plane``: a field per option, its ``Option`` holding the help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from openrr.config.option import Option, Positive, SettingsGroup, existing_directories
from openrr.config.per_size import amount
from openrr.storage.base import LinkedAccount, parse_linked_account

_ENDPOINT = "devstoreaccount1@http://127.0.0.1:10000/devstoreaccount1"


class ConversionServiceSettings(SettingsGroup):
    """Conversions: where containers may be (openrr.storage), and the workers that run them."""

    container_roots: Annotated[
        tuple[Path, ...],
        Option(
            "Directory file:///PATH conversion containers may lie in, a folder per account: "
            "ROOT/ACCOUNT_ID/CONTAINER; repeatable.",
            default_text="none, no file: containers",
            flag="--container-root",
            path="dir",
        ),
    ] = ()
    storage_accounts: Annotated[
        tuple[str, ...],
        Field(repr=False),
        Option(
            "Storage endpoint every account's conversions may use with a SAS, NAME@ENDPOINT (e.g. "
            f"{_ENDPOINT} for Azurite); repeatable. Keys are linked to one account each: openrr accounts "
            "link-storage.",
            default_text="none",
            flag="--storage-account",
            doc="Besides Azure's public endpoints. A key (`NAME=KEY…`) is refused.",
        ),
    ] = ()
    conversion_workers: Annotated[int, Field(ge=1, le=64), Option("Conversions run at once, 1..64.")] = 2
    conversion_timeout: Annotated[
        Positive,
        Option("Seconds a conversion may run before it fails.", doc="Its converter process is killed then."),
    ] = 3600.0
    conversion_max_input_mb: Annotated[
        int, Field(ge=1), Option("Largest input a conversion downloads, in MiB.")
    ] = 4096
    converter_memory: Annotated[
        str,
        Field(pattern=r"(?i)^[0-9]{1,15}\s*[KMGT]?I?B?$"),
        Option(
            "Memory ceiling (RLIMIT_DATA) of a converter process, e.g. 8G; past it the conversion fails.",
            doc="With `ConversionProcessFailed`, saying so.",
        ),
    ] = "8G"

    @field_validator("container_roots")
    @classmethod
    def _container_directories(cls, roots: tuple[Path, ...]) -> tuple[Path, ...]:
        return existing_directories(roots)

    @field_validator("storage_accounts")
    @classmethod
    def _storage_accounts(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        names = []
        for number, value in enumerate(values, 1):
            try:
                account = parse_linked_account(value)
            except ValueError as exc:  # its message never shows the key
                raise ValueError(f"entry {number}: {exc}") from None
            if account.key is not None:
                # A service-wide key let every account's conversions use that storage without a SAS. It is
                # refused rather than bound to some account by guess: the operator says which one.
                endpoint = f"@{account.endpoint}" if account.endpoint else ""
                raise ValueError(
                    f"entry {number}: a storage account key is no longer service-wide; link {account.name} "
                    f"to the one account whose conversions may use it: openrr accounts link-storage ACCOUNT "
                    f"{account.name}=KEY{endpoint} (or --key-stdin), then give --storage-account "
                    f"{account.name}@{account.blob_endpoint} here only if every account may use it with a SAS"
                )
            names.append(account.name)
        if len(set(names)) != len(names):
            raise ValueError("a storage account is given twice")
        return values

    @property
    def linked_accounts(self) -> tuple[LinkedAccount, ...]:
        return tuple(parse_linked_account(value) for value in self.storage_accounts)

    @property
    def converter_memory_bytes(self) -> int:
        return amount(self.converter_memory)

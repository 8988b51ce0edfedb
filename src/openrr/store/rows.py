"""How the store's records become table rows and back: sessions, conversions, accounts, signing keys.

Apart from the queries so that every table's column mapping is read in one place, and so that a test can
write a row exactly as the store would (``session_row``). Everything openrr stores is UTC: ``utc`` makes
the datetimes SQLite hands back aware, and converts aware ones before they are written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from openrr.domain.account import Account, SigningKey
from openrr.domain.conversion import Conversion, ConversionInput, ConversionOutput, ConversionStatus
from openrr.domain.session import Endpoint, Session, SessionError, Size, Status


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` in UTC, aware. SQLite returns naive datetimes, and keeps only the wall time of an aware
    one, so a datetime in another zone must be converted before it is stored."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def holds_server(s: Session) -> bool:
    """Whether ``s`` occupies a render-server slot: active, or ended with its server not released yet."""
    return s.status.active or (not s.host_released and s.host_handle is not None)


def session_row(s: Session) -> dict[str, Any]:
    ep = s.endpoint
    return {
        "account_id": s.account_id,
        "id": s.id,
        "size": s.size.value,
        "status": s.status.value,
        "lease_minutes": s.lease_minutes,
        "models": list(s.models),
        "created_at": utc(s.created_at),
        "ready_at": utc(s.ready_at),
        "ended_at": utc(s.ended_at),
        "hostname": ep.hostname if ep else None,
        "handshake_port": ep.handshake_port if ep else None,
        "inspector_port": ep.inspector_port if ep else None,
        "teraflops": s.teraflops,
        "error_code": s.error.code if s.error else None,
        "error_message": s.error.message if s.error else None,
        "host_handle": s.host_handle,
        "host_released": s.host_released,
        "holds_server": holds_server(s),
        "connect_secret": s.connect_secret,
        "version": s.version,
    }


def session_from(m: Mapping[Any, Any]) -> Session:
    endpoint = None
    if m["hostname"] is not None:
        endpoint = Endpoint(m["hostname"], m["handshake_port"], m["inspector_port"], m["teraflops"] or 0.0)
    error = SessionError(m["error_code"], m["error_message"] or "") if m["error_code"] else None
    created = utc(m["created_at"])
    assert created is not None
    return Session(
        account_id=m["account_id"],
        id=m["id"],
        size=Size(m["size"]),
        lease_minutes=m["lease_minutes"],
        status=Status(m["status"]),
        created_at=created,
        models=tuple(m["models"] or ()),
        ready_at=utc(m["ready_at"]),
        ended_at=utc(m["ended_at"]),
        endpoint=endpoint,
        teraflops=m["teraflops"],
        error=error,
        host_handle=m["host_handle"],
        host_released=bool(m["host_released"]),
        connect_secret=m["connect_secret"],
        version=m["version"],
    )


def conversion_row(c: Conversion) -> dict[str, Any]:
    return {
        "account_id": c.account_id,
        "id": c.id,
        "status": c.status.value,
        "settings": {
            "input": {
                "containerUri": c.input.container_uri,
                "blobPrefix": c.input.blob_prefix,
                "assetPath": c.input.asset_path,
            },
            "output": {
                "containerUri": c.output.container_uri,
                "blobPrefix": c.output.blob_prefix,
                "assetFilename": c.output.asset_filename,
            },
        },
        "input_sas": c.input_sas,
        "output_sas": c.output_sas,
        "created_at": utc(c.created_at),
        "started_at": utc(c.started_at),
        "ended_at": utc(c.ended_at),
        "output_uri": c.output_uri,
        "error_code": c.error_code,
        "error_message": c.error_message,
        "attempts": c.attempts,
        "worker": c.worker,
        "heartbeat_at": utc(c.heartbeat_at),
        "version": c.version,
    }


def conversion_from(m: Mapping[Any, Any]) -> Conversion:
    settings = m["settings"]
    inp, out = settings["input"], settings["output"]
    created = utc(m["created_at"])
    assert created is not None
    return Conversion(
        account_id=m["account_id"],
        id=m["id"],
        input=ConversionInput(inp["containerUri"], inp["blobPrefix"], inp["assetPath"]),
        output=ConversionOutput(out["containerUri"], out["blobPrefix"], out["assetFilename"]),
        status=ConversionStatus(m["status"]),
        created_at=created,
        input_sas=m["input_sas"],
        output_sas=m["output_sas"],
        started_at=utc(m["started_at"]),
        ended_at=utc(m["ended_at"]),
        output_uri=m["output_uri"],
        error_code=m["error_code"],
        error_message=m["error_message"],
        attempts=m["attempts"],
        worker=m["worker"],
        heartbeat_at=utc(m["heartbeat_at"]),
        version=m["version"],
    )


def account_from(m: Mapping[Any, Any]) -> Account:
    created = utc(m["created_at"])
    assert created is not None
    return Account(
        m["id"],
        m["name"],
        created,
        m["primary_key_hash"],
        m["secondary_key_hash"],
        utc(m["tokens_not_before"]),
    )


def signing_key_from(m: Mapping[Any, Any]) -> SigningKey:
    created = utc(m["created_at"])
    assert created is not None
    return SigningKey(m["kid"], bytes(m["private_pem"]), created)

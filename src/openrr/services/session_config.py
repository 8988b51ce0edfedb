"""What the session service is configured with, and the spec each render server gets from it.

Apart from ``SessionService`` because the runtime builds the configuration from the settings, and the warm
pool builds its templates with ``render_spec`` too: neither needs the service's state to do so.
"""

from __future__ import annotations

import dataclasses

from openrr.domain.session import MAX_LEASE_MINUTES, Session, Size
from openrr.protocol.handshake import RenderLimits, RenderSettings, RenderSpec
from openrr.services.tokens import MAX_TOKEN_LIFETIME, TokenIssuer


@dataclasses.dataclass(frozen=True)
class SessionConfig:
    render_bind_host: str = "127.0.0.1"
    render_advertise_host: str = "127.0.0.1"
    callback_base_url: str = "https://127.0.0.1:8443"
    callback_ca: str | None = None
    start_timeout_s: float = 60.0
    stop_grace_s: float = 5.0
    cache_ttl_s: float = 1.0
    teraflops: dict[Size, float] = dataclasses.field(
        default_factory=lambda: {Size.STANDARD: 8.1, Size.PREMIUM: 16.2}
    )
    # Passed through to every render server (see RenderSpec).
    render: RenderSettings = dataclasses.field(default_factory=RenderSettings)
    # A size missing here, like Premium, is unlimited.
    polygon_limits: dict[Size, int] = dataclasses.field(default_factory=lambda: {Size.STANDARD: 20_000_000})
    # What each size's render server may use (textures, models, geometry, memory); a size missing here has
    # no limits (tests); ``openrr serve`` always gives both (openrr.config.per_size.DEFAULT_RENDER_LIMITS).
    render_limits: dict[Size, RenderLimits] = dataclasses.field(default_factory=dict)
    # Sessions holding a render server at once, per account (None: no quota).
    max_sessions_per_account: int | None = None
    # The longest lease a session may have, at create or by renewals (ARR's own ceiling is 1440).
    max_lease_minutes: int = MAX_LEASE_MINUTES
    # The longest a connect token lives (it never outlives the lease either).
    connect_token_minutes: int = 30


def render_spec(
    config: SessionConfig, tokens: TokenIssuer, size: Size, session: Session | None = None, instance: str = ""
) -> RenderSpec:
    """The spec a render server gets; without a session, the template a pooled server warms up with."""
    return RenderSpec(
        account_id=session.account_id if session else "",
        session_id=session.id if session else "",
        instance=instance,
        size=size.value,
        models=session.models if session else (),
        bind_host=config.render_bind_host,
        advertise_host=config.render_advertise_host,
        teraflops=config.teraflops[size],
        callback_url=(
            f"{config.callback_base_url}/internal/render/{session.account_id}/{session.id}" if session else ""
        ),
        callback_token=(
            tokens.issue_render_token(session.account_id, session.id, MAX_TOKEN_LIFETIME) if session else ""
        ),
        callback_ca=config.callback_ca,
        connect_secret=(session.connect_secret or "") if session else "",
        ready_deadline_s=config.start_timeout_s,
        settings=config.render,
        polygon_limit=config.polygon_limits.get(size),
        lease_minutes=session.lease_minutes if session else None,
        limits=config.render_limits.get(size, RenderLimits()),
    )

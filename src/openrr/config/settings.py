"""Service settings for ``openrr serve``: the groups together, fed by CLI flags and ``OPENRR_*`` variables.

``Settings.load`` takes the options flat, as the CLI has them (``{"data_dir": ..., "video_fps": ...}``),
sorts them into their groups (declared in ``control_plane``, ``render_servers`` and ``conversions``) and
reports every invalid setting at once (pydantic collects them all), each under its flag.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from openrr.config.control_plane import LimitSettings, ServerSettings, SessionSettings
from openrr.config.conversions import ConversionServiceSettings
from openrr.config.option import OptionInfo, flag_of, options
from openrr.config.render_servers import HostSettings, RenderServerSettings
from openrr.errors import InvalidInput

# Group name in Settings → its model, in the order help and README show the groups.
GROUPS: dict[str, type[BaseModel]] = {
    "server": ServerSettings,
    "sessions": SessionSettings,
    "render": RenderServerSettings,
    "conversions": ConversionServiceSettings,
    "hosts": HostSettings,
    "limits": LimitSettings,
}
# Setting name → its group's name. Names are unique across groups: they are the options' names.
_GROUP_OF = {name: group for group, model in GROUPS.items() for name in model.model_fields}
_FLAG_OF = {
    name: flag_of(name, info) for model in GROUPS.values() for name, info in model.model_fields.items()
}


def all_options() -> list[OptionInfo]:
    """Every option of ``openrr serve``, group by group."""
    return options(GROUPS)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    server: ServerSettings = ServerSettings()
    sessions: SessionSettings = SessionSettings()
    render: RenderServerSettings = RenderServerSettings()
    conversions: ConversionServiceSettings = ConversionServiceSettings()
    hosts: HostSettings = HostSettings()
    limits: LimitSettings = LimitSettings()

    # Field validators run for every field even when others fail, so each problem is reported; this runs
    # once every group is valid, and adds the combinations.
    @model_validator(mode="after")
    def _combinations(self) -> Self:
        server, render, hosts, sessions = self.server, self.render, self.hosts, self.sessions
        checks = (
            ((server.cert is None) != (server.key is None), "--cert and --key must be given together"),
            (
                (render.render_tls_cert is None) != (render.render_tls_key is None),
                "--render-tls-cert and --render-tls-key must be given together",
            ),
            (
                render.render_tls_ca is not None and render.render_tls_cert is None,
                "--render-tls-ca needs --render-tls-cert and --render-tls-key",
            ),
            (
                server.insecure_http and server.cert is not None,
                "--insecure-http cannot be combined with --cert/--key",
            ),
            (
                bool(render.turn_urls) and (not render.turn_username or not render.turn_credential),
                "--turn-url needs --turn-username and --turn-credential",
            ),
            (
                hosts.host_backend == "ray" and not hosts.ray_address,
                "--host-backend ray needs --ray-address HOST:PORT (the head's GCS address)",
            ),
            (
                hosts.host_backend == "ray" and bool(hosts.local_slots),
                "--local-slots applies to the local host; a Ray cluster's nodes declare their slots",
            ),
            (
                sessions.control_plane_grace <= sessions.heartbeat_interval,
                "--control-plane-grace must be longer than --heartbeat-interval",
            ),
        )
        problems = [message for failed, message in checks if failed]
        if problems:
            raise ValueError("\n".join(problems))  # load() reports each line
        if "model_roots" not in render.model_fields_set:
            # The default model root lies under --data-dir, a server setting: known only now.
            roots = (server.default_model_root,)
            object.__setattr__(self, "render", render.model_copy(update={"model_roots": roots}))
        return self

    @classmethod
    def load(cls, values: dict[str, Any]) -> Settings:
        """Validate the flat settings (None: not given), raising InvalidInput whose message lists every
        problem on its own line."""
        grouped: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if value is not None:
                # An unknown name goes to the top, where it is refused as an extra input under its flag.
                grouped.setdefault(_GROUP_OF.get(name, name), {})[name] = value
        try:
            return cls.model_validate({group: grouped.get(group, {}) for group in GROUPS} | _extra(grouped))
        except ValidationError as exc:
            raise InvalidInput("\n".join(_problem(err) for err in exc.errors())) from None


def _extra(grouped: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: inner[name] for name, inner in grouped.items() if name not in GROUPS}


def _problem(err: Any) -> str:
    """One line of ``load``'s message: the setting's flag (and index), then what is wrong."""
    loc = [str(part) for part in err["loc"]]
    if loc and loc[0] in GROUPS:
        loc = loc[1:]  # the group is where the setting lives, not part of its name
    msg = str(err["msg"]).removeprefix("Value error, ")
    if not loc:
        return msg
    field, *inner = loc
    where = _FLAG_OF.get(field, "--" + field.replace("_", "-")) + "".join(f"[{i}]" for i in inner)
    return f"{where}: {msg}"

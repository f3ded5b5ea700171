"""Settings from flags, environment (ONEDRIVE_BACKUP_*) and the config file; cloud endpoints."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onedrive_backup.errors import UsageError

ENV_PREFIX = "ONEDRIVE_BACKUP_"


@dataclass(frozen=True)
class Cloud:
    name: str
    login_host: str
    graph_host: str


# shared/graph-facts.md §7 (Microsoft Graph national cloud deployments).
CLOUDS: dict[str, Cloud] = {
    "global": Cloud("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": Cloud("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov-dod": Cloud(
        "usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"
    ),
    "china": Cloud(
        "china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"
    ),
}
CLOUD_NAMES = (*CLOUDS, "custom")


@dataclass(frozen=True)
class Endpoints:
    authority: str  # e.g. https://login.microsoftonline.com/consumers
    graph_url: str  # e.g. https://graph.microsoft.com/v1.0
    is_custom: bool = False


def default_config_dir() -> Path:
    """Per-user config folder: %APPDATA% on Windows, ~/Library/Application Support on macOS."""
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "onedrive-backup"


@dataclass(frozen=True)
class Settings:
    """Everything that says *where* to sign in and talk to; not what to back up."""

    config_dir: Path
    client_id: str | None = None
    cloud: str = "global"
    tenant: str = "consumers"
    authority: str | None = None
    graph_url: str | None = None
    ca_bundle: Path | None = None

    def endpoints(self) -> Endpoints:
        return resolve_endpoints(self.cloud, self.tenant, self.authority, self.graph_url)

    @property
    def token_cache_path(self) -> Path:
        return self.config_dir / "token_cache.bin"


def resolve_endpoints(
    cloud: str,
    tenant: str = "consumers",
    authority: str | None = None,
    graph_url: str | None = None,
) -> Endpoints:
    """The authority and Graph base URL for a cloud, or the custom pair given."""
    if cloud == "custom" or (authority and graph_url):
        if not authority or not graph_url:
            raise UsageError(
                "The custom cloud needs both an authority and a Graph URL.",
                "Pass --authority https://HOST/TENANT and --graph-url https://HOST/v1.0 "
                "(or ONEDRIVE_BACKUP_AUTHORITY and ONEDRIVE_BACKUP_GRAPH_URL).",
            )
        for label, url in (("--authority", authority), ("--graph-url", graph_url)):
            if not url.startswith("https://"):
                raise UsageError(f"{label} must be an https:// URL, got {url!r}.")
        return Endpoints(authority.rstrip("/"), graph_url.rstrip("/"), is_custom=True)
    if cloud not in CLOUDS:
        raise UsageError(f"Unknown cloud {cloud!r}.", f"Choose one of: {', '.join(CLOUD_NAMES)}.")
    c = CLOUDS[cloud]
    base_authority = authority.rstrip("/") if authority else f"{c.login_host}/{tenant}"
    base_graph = graph_url.rstrip("/") if graph_url else f"{c.graph_host}/v1.0"
    return Endpoints(base_authority, base_graph)


def _config_file_values(config_dir: Path) -> dict[str, Any]:
    path = config_dir / "config.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"The config file {path} could not be read ({exc}).",
            "Fix or delete it; every setting can also be given as a flag.",
        ) from exc
    if not isinstance(data, dict):
        raise UsageError(f"The config file {path} must hold a JSON object.")
    return data


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge settings: flags win over ONEDRIVE_BACKUP_* variables, which win over config.json."""
    flags = dict(flags or {})
    env = os.environ if environ is None else environ

    def pick(name: str, file_values: Mapping[str, Any]) -> Any:
        if flags.get(name) not in (None, ""):
            return flags[name]
        env_value = env.get(ENV_PREFIX + name.upper())
        if env_value not in (None, ""):
            return env_value
        return file_values.get(name)

    config_dir = Path(pick("config_dir", {}) or default_config_dir()).expanduser()
    file_values = _config_file_values(config_dir)
    cloud = str(pick("cloud", file_values) or "global")
    if cloud not in CLOUD_NAMES:
        raise UsageError(f"Unknown cloud {cloud!r}.", f"Choose one of: {', '.join(CLOUD_NAMES)}.")
    ca = pick("ca_bundle", file_values)
    ca_path = Path(ca).expanduser() if ca else None
    if ca_path is not None and not ca_path.is_file():
        raise UsageError(
            f"The CA bundle {ca_path} does not exist.",
            "Pass --ca-bundle with the path of a PEM file, or leave it unset.",
        )
    return Settings(
        config_dir=config_dir,
        client_id=pick("client_id", file_values),
        cloud=cloud,
        tenant=str(pick("tenant", file_values) or "consumers"),
        authority=pick("authority", file_values),
        graph_url=pick("graph_url", file_values),
        ca_bundle=ca_path,
    )

"""Where the console is and which token to use: the command line, then the environment
(FLOWDECK_URL, FLOWDECK_TOKEN, FLOWDECK_TEAM), then a TOML file (FLOWDECK_CONFIG, else
$XDG_CONFIG_HOME/flowdeck/config.toml, else ~/.config/flowdeck/config.toml)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from flowdeck_cli.exits import Exit, Failure

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Settings:
    url: str
    token: str
    team: str  # the team `deploy` saves to when --team is not given ("" when unset)
    source: Path | None  # the config file read, if any (shown by `flowdeck whoami`)


def config_path() -> Path:
    if os.environ.get("FLOWDECK_CONFIG"):
        return Path(os.environ["FLOWDECK_CONFIG"]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "flowdeck" / "config.toml"


def _read(path: Path) -> dict:
    if not path.is_file():
        if os.environ.get("FLOWDECK_CONFIG"):
            raise Failure(Exit.USAGE, f"FLOWDECK_CONFIG names {path}, which does not exist.")
        return {}
    try:
        values = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise Failure(Exit.USAGE, f"{path} is not valid TOML: {error}") from None
    unknown = sorted(set(values) - {"url", "token", "team"})
    if unknown:
        raise Failure(Exit.USAGE, f"{path}: unknown keys {', '.join(unknown)}; the keys are url, token and team.")
    return values


def load_settings(url: str | None = None) -> Settings:
    path = config_path()
    values = _read(path)
    token = os.environ.get("FLOWDECK_TOKEN") or values.get("token", "")
    if not token:
        raise Failure(
            Exit.USAGE,
            "No API token: create one on your tokens page in the console, then set "
            f'FLOWDECK_TOKEN or put token = "fd_..." in {path}.',
        )
    return Settings(
        url=(url or os.environ.get("FLOWDECK_URL") or values.get("url") or DEFAULT_URL).rstrip("/"),
        token=token,
        team=os.environ.get("FLOWDECK_TEAM") or values.get("team", ""),
        source=path if values else None,
    )

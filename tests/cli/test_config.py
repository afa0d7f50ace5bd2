"""Where `flowdeck` finds the console and its token: --url, then the environment, then the
config file; a file it cannot use stops it with the usage code and says why."""

import pytest

from flowdeck_cli.config import load_settings
from flowdeck_cli.exits import Exit, Failure


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    for name in ("FLOWDECK_URL", "FLOWDECK_TOKEN", "FLOWDECK_TEAM", "FLOWDECK_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "flowdeck").mkdir()
    return tmp_path / "flowdeck" / "config.toml"


def test_the_file_is_read_and_the_environment_and_url_option_win(config_home, monkeypatch):
    config_home.write_text('url = "https://file.example.com/"\ntoken = "fd_file"\nteam = "billing"\n')
    from_file = load_settings()
    assert (from_file.url, from_file.token, from_file.team, from_file.source) == (
        "https://file.example.com", "fd_file", "billing", config_home)
    monkeypatch.setenv("FLOWDECK_TOKEN", "fd_env")
    monkeypatch.setenv("FLOWDECK_URL", "https://env.example.com")
    from_env = load_settings()
    assert (from_env.url, from_env.token, from_env.team) == ("https://env.example.com", "fd_env", "billing")
    assert load_settings("https://option.example.com").url == "https://option.example.com"


@pytest.mark.parametrize(("text", "said"), [
    ('token = "fd_x"\nurl = ', "is not valid TOML"),
    ('token = "fd_x"\ntokn = "fd_y"\n', "unknown keys tokn"),
    ('url = "https://file.example.com"\n', "No API token"),
])
def test_a_file_it_cannot_use_is_a_usage_error(config_home, text, said):
    config_home.write_text(text)
    with pytest.raises(Failure) as refused:
        load_settings()
    assert refused.value.code == Exit.USAGE and said in refused.value.message


def test_a_named_config_file_must_exist(config_home, monkeypatch, tmp_path):
    monkeypatch.setenv("FLOWDECK_CONFIG", str(tmp_path / "elsewhere.toml"))
    with pytest.raises(Failure) as refused:
        load_settings()
    assert refused.value.code == Exit.USAGE and "elsewhere.toml, which does not exist" in refused.value.message

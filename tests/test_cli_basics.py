"""The command-line surface: help, version, usage errors and their exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from onedrive_backup.cli import main
from onedrive_backup.config import CLOUDS, load_settings, resolve_endpoints
from onedrive_backup.errors import UsageError


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "130" in out and "sign-in needed" in out


def test_unknown_option_is_usage_error() -> None:
    assert main(["--no-such-flag"]) == 2


@pytest.mark.parametrize(
    ("cloud", "login", "graph"),
    [
        ("global", "login.microsoftonline.com", "graph.microsoft.com"),
        ("usgov", "login.microsoftonline.us", "graph.microsoft.us"),
        ("usgov-dod", "login.microsoftonline.us", "dod-graph.microsoft.us"),
        ("china", "login.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_cloud_endpoints(cloud: str, login: str, graph: str) -> None:
    ep = resolve_endpoints(cloud, "organizations")
    assert ep.authority == f"https://{login}/organizations"
    assert ep.graph_url == f"https://{graph}/v1.0"
    assert cloud in CLOUDS


def test_custom_cloud_needs_both_urls() -> None:
    with pytest.raises(UsageError, match="authority and a Graph URL"):
        resolve_endpoints("custom", authority="https://127.0.0.1:1/consumers")


def test_flags_beat_environment(tmp_path: Path) -> None:
    env = {"ONEDRIVE_BACKUP_CLIENT_ID": "from-env", "ONEDRIVE_BACKUP_CONFIG_DIR": str(tmp_path)}
    assert load_settings({}, env).client_id == "from-env"
    assert load_settings({"client_id": "from-flag"}, env).client_id == "from-flag"


def _backup_answers(argv: list[str]) -> object:
    from onedrive_backup.cli import build_parser
    from onedrive_backup.commands.backup_cmd import answers_from_args

    parser, _ = build_parser()
    return answers_from_args(parser.parse_args(["backup", *argv]), environ={})


def test_version_flags_reach_the_plan(tmp_path: object) -> None:
    from onedrive_backup.commands.backup_cmd import make_plan

    a = _backup_answers(["--dest", str(tmp_path), "--new", "--keep-versions", "30"])
    plan = make_plan(a)  # type: ignore[arg-type]
    assert plan.keep_versions_days == 30.0 and plan.no_versions is False
    plan = make_plan(_backup_answers(["--dest", str(tmp_path), "--new", "--no-versions"]))  # type: ignore[arg-type]
    assert plan.no_versions is True and plan.keep_versions_days is None


@pytest.mark.parametrize(
    "argv",
    [["--keep-versions", "soon"], ["--keep-versions", "-1"], ["--workers", "33"]],
)
def test_bad_backup_values_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        _backup_answers(argv)


def test_keep_and_no_versions_exclude_each_other() -> None:
    assert main(["backup", "--keep-versions", "3", "--no-versions"]) == 2


def test_bare_flags_on_a_terminal_mean_the_interactive_backup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from onedrive_backup import cli

    _, commands = cli.build_parser()
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert cli._interactive_default(["--bwlimit", "60K"], commands)
    assert not cli._interactive_default(["list", "--dest", "x"], commands)
    assert not cli._interactive_default(["--help"], commands)


def test_resumed_backup_keeps_the_shared_scope(tmp_path: Path) -> None:
    """A backup started with --include-shared and resumed without the flag still signs in
    with Files.Read.All (its stored selection follows shared items)."""
    from onedrive_backup.engine import BackupPlan, wants_shared_scope
    from onedrive_backup.selection import Selection
    from onedrive_backup.state import BackupState

    with BackupState.create(tmp_path) as state:
        state.set_meta("selection", Selection.build(include_shared=True).to_json())
        name = state.backup_dir.name
    assert wants_shared_scope(BackupPlan(dest=tmp_path, resume=name))
    assert wants_shared_scope(BackupPlan(dest=tmp_path, resume="latest"))
    assert not wants_shared_scope(BackupPlan(dest=tmp_path))
    plain = BackupPlan(dest=tmp_path, resume="latest", selection=Selection.all())
    assert not wants_shared_scope(plain)

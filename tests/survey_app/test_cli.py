import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner

from survey_app import migrate
from survey_app.cli import main
from survey_app.db import create_database_engine, default_database_url
from survey_app.migrate import head_revision


def _invoke(tmp_path: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["--data-dir", str(tmp_path / "data"), *args], env=env)


def test_create_study_then_export(tmp_path: Path, run_dir: Path) -> None:
    created = _invoke(
        tmp_path,
        "create-study",
        "--run",
        str(run_dir),
        "--slug",
        "cli-study",
        "--pairs",
        "6",
        "--trials-per-session",
        "3",
        "--lineup-size",
        "2",
        "--seed",
        "5",
    )
    assert created.exit_code == 0, created.output
    assert "study cli-study: 6 test pairs" in created.output
    assert len(list((tmp_path / "data" / "images").glob("*.png"))) > 12
    exported = _invoke(
        tmp_path, "export", "--study", "cli-study", "--out", str(tmp_path / "out"), "--bootstrap-replicates", "50"
    )
    assert exported.exit_code == 0, exported.output
    assert {path.name for path in (tmp_path / "out").iterdir()} == {
        "answers.csv",
        "raters.csv",
        "codebook.json",
        "export.json",
        "results_summary.json",
        "results_summary.md",
    }


def test_migrate_and_create_admin(tmp_path: Path, cli_error) -> None:
    assert f"database at revision {head_revision()}" in _invoke(tmp_path, "migrate").output
    saved = _invoke(tmp_path, "create-admin", "--username", "boss", env={"SURVEY_APP_ADMIN_PASSWORD": "long enough pw"})
    assert saved.exit_code == 0 and "admin boss saved" in saved.output
    short = _invoke(tmp_path, "create-admin", "--username", "boss", env={"SURVEY_APP_ADMIN_PASSWORD": "short"})
    cli_error(short, "at least 12 characters")


def test_migrate_refuses_a_database_whose_rows_refer_to_missing_rows(tmp_path: Path, cli_error) -> None:
    """Migrations run with SQLite's foreign keys off (survey_app.migrate): dangling rows stop them, nothing changes."""
    data_dir = tmp_path / "data"  # _invoke's --data-dir
    data_dir.mkdir()
    engine = create_database_engine(default_database_url(data_dir))
    migrate.upgrade(engine, "0001")
    engine.dispose()
    with closing(sqlite3.connect(data_dir / "survey.sqlite3")) as database, database:
        columns = "id, rater_id, item_id, position, display_image_ids"
        database.execute(f"INSERT INTO trials ({columns}) VALUES ('t', 9, 9, 0, '[]')")  # rater 9 and item 9: none
    cli_error(_invoke(tmp_path, "migrate"), "refer to missing rows", "not applied")
    engine = create_database_engine(default_database_url(data_dir))
    assert migrate.current_revision(engine) == "0001"
    engine.dispose()


def _broken_inputs(tmp_path: Path, run_dir: Path) -> dict[str, Path]:
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pairs.csv").write_text("speaker,photo\nx,y\n")
    return {"does not exist": tmp_path / "missing", "has no pairs.csv": empty, "lacks column(s)": bad}


def test_bad_input_gives_one_error_line_and_exit_status_2(tmp_path: Path, run_dir: Path, cli_error) -> None:
    for message, folder in _broken_inputs(tmp_path, run_dir).items():
        cli_error(_invoke(tmp_path, "create-study", "--run", str(folder)), message)
    cli_error(_invoke(tmp_path, "export", "--study", "nope", "--out", str(tmp_path / "o")), "no study 'nope'")


def test_unknown_database_kind_is_one_clear_line(tmp_path: Path, run_dir: Path, cli_error) -> None:
    result = _invoke(tmp_path, "--database-url", "nosuchdb://x", "create-study", "--run", str(run_dir))
    assert cli_error(result).startswith("error: database error")


def test_unusable_database_is_one_clear_line_in_a_real_process(tmp_path: Path, run_dir: Path) -> None:
    database_url = "sqlite:////nonexistent-dir/x.sqlite3"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "survey_app",
            "--data-dir",
            str(tmp_path / "d"),
            "--database-url",
            database_url,
            "create-study",
            "--run",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert process.returncode == 2
    assert "Traceback" not in process.stderr and process.stderr.count("\n") == 1
    assert process.stderr.startswith("error: database error")


def test_serve_refuses_a_busy_port_and_bad_worker_counts(tmp_path: Path, cli_error) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        cli_error(_invoke(tmp_path, "serve", "--port", port), f"cannot listen on 127.0.0.1:{port}")
    cli_error(_invoke(tmp_path, "serve", "--port", "0", "--workers", "0"), "at least 1")
    cli_error(_invoke(tmp_path, "serve", "--port", "0", "--threads", "0"), "at least 1")


def test_help_creates_no_data_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["create-study", "--help"], ["--help"], ["export", "-h"] if "-h" in main.context_settings.get(
            "help_option_names", []) else ["export", "--help"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and "Usage" in result.output, result.output
    assert not (tmp_path / "survey_data").exists()

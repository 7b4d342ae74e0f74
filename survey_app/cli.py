"""`survey-app`: migrate the database, create studies and admins, serve the app, export results."""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.security import generate_password_hash

from survey_app import migrate
from survey_app.app import create_app
from survey_app.db import (
    create_database_engine,
    create_session_factory,
    default_database_url,
)
from survey_app.export import write_export
from survey_app.manifest import load_run_input
from survey_app.models import Admin, Study, StudyKind
from survey_app.server import StudyServer, check_can_listen, default_threads, default_workers
from survey_app.study_builder import (
    DEFAULT_CONSENT_VERSION,
    StudyOptions,
    create_study,
    new_slug,
)
from survey_app.study_kinds import DEFAULT_CONSENT_TEXTS, MAIN_ITEM_KIND, PROMPTS, KindOptions, create_kind_study
from survey_app.views_admin import end_other_sessions

SECRET_KEY_FILE = "secret_key"


@dataclass(frozen=True)
class Workspace:
    data_dir: Path
    database_url: str

    @property
    def image_store(self) -> Path:
        return self.data_dir / "images"

    def secret_key(self) -> str:
        """SURVEY_APP_SECRET_KEY, else a random key kept in DATA_DIR/secret_key (created on first use, mode 0600)."""
        if os.environ.get("SURVEY_APP_SECRET_KEY"):
            return os.environ["SURVEY_APP_SECRET_KEY"]
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
        return path.read_text().strip()

    def migrated_session_factory(self):
        engine = create_database_engine(self.database_url)
        migrate.upgrade(engine)
        return create_session_factory(engine)


def error_message(error: Exception) -> str | None:
    """The one-line message of an expected failure (bad input, unusable database), or None for a bug."""
    if isinstance(error, SQLAlchemyError):
        first_line = str(error.orig if getattr(error, "orig", None) else error).splitlines()[0]
        return f"database error: {first_line}"
    if isinstance(error, (ValueError, OSError)):  # ManifestError is a ValueError
        return str(error)
    return None


class FriendlyGroup(click.Group):
    """Reports an expected failure as one `error: ...` line on stderr and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        ctx.meta["help_only"] = bool(set(ctx.help_option_names) & {*ctx.protected_args, *ctx.args})
        try:
            return super().invoke(ctx)
        except Exception as error:
            message = error_message(error)
            if message is None:
                raise
            click.echo(f"error: {message}", err=True)
            sys.exit(2)


@click.group(cls=FriendlyGroup)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="survey_data",
    envvar="SURVEY_APP_DATA_DIR",
    show_default=True,
    help="Folder of the SQLite database, the image store and the secret key.",
)
@click.option(
    "--database-url",
    envvar="SURVEY_APP_DATABASE_URL",
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@localhost/survey (default: SQLite in --data-dir).",
)
@click.pass_context
def main(context: click.Context, data_dir: Path, database_url: str | None) -> None:
    """Human perceptual study of generated faces (MOS + recognition)."""
    if not context.meta.get("help_only") and not data_dir.exists():  # `--help` must not create ./survey_data
        data_dir.mkdir(parents=True, mode=0o700)  # the database, real faces and the secret key: owner only
    context.obj = Workspace(data_dir, database_url or default_database_url(data_dir))


@main.command("migrate")
@click.pass_obj
def migrate_command(workspace: Workspace) -> None:
    """Create or upgrade the database schema to the latest revision."""
    engine = create_database_engine(workspace.database_url)
    migrate.upgrade(engine)
    click.echo(f"database at revision {migrate.current_revision(engine)}")


@main.command("create-study")
@click.option(
    "--run",
    "run_dirs",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="evalkit run folder or any folder with pairs.csv (--kind pairwise: two or more, joined on their clip ids).",
)
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in StudyKind]),
    default=StudyKind.FACES.value,
    show_default=True,
    help="faces: MOS + recognition (+ lineups); matching: voice -> face forced choice, real and generated arms; "
    "hype: real or generated?; pairwise: which run's face fits the voice (or photo) better.",
)
@click.option("--faces", default=2, show_default=True, help="--kind matching: faces per trial (chance 1/faces).")
@click.option(
    "--exposures-ms",
    default="",
    help="--kind hype: fixed exposure times in ms, comma-separated (e.g. 250,500,1000), besides untimed trials.",
)
@click.option(
    "--prompt",
    type=click.Choice(PROMPTS),
    default="audio",
    show_default=True,
    help="--kind pairwise: prompt by the clip's voice or by the person's real photo.",
)
@click.option("--title", default="Faces generated from speech", show_default=True)
@click.option("--slug", default=None, help="Public study id in the rater URL (default: random).")
@click.option(
    "--pairs",
    "test_pairs",
    default=32,
    show_default=True,
    help="Real/generated pairs in the study (matching, pairwise: clips; hype: generated faces, as many real) (0: all)",
)
@click.option(
    "--trials-per-session",
    default=32,
    show_default=True,
    help="Test pairs each rater sees (other kinds: trials of the kind, besides the audio check).",
)
@click.option("--lineup-size", default=0, show_default=True, help="Real faces per lineup trial (0: no lineup task).")
@click.option("--seed", default=None, type=int, help="Seed of pair selection and controls (default: random, stored).")
@click.option("--consent-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--consent-version", default=DEFAULT_CONSENT_VERSION, show_default=True)
@click.pass_obj
def create_study_command(
    workspace: Workspace, run_dirs: tuple[Path, ...], consent_file: Path | None, **options
) -> None:
    """Create a study from RUN_DIR/pairs.csv, copying its images (and audio) into the store under opaque ids."""
    kind = StudyKind(options["kind"])
    if kind == StudyKind.FACES and len(run_dirs) != 1:
        raise ValueError("--kind faces takes one --run (only --kind pairwise compares runs)")
    if kind != StudyKind.FACES and options["lineup_size"]:
        raise ValueError("--lineup-size is an option of --kind faces")
    runs = [load_run_input(run_dir) for run_dir in run_dirs]
    study_options = StudyOptions(
        title=options["title"],
        slug=options["slug"] or new_slug(),
        seed=options["seed"] if options["seed"] is not None else secrets.randbelow(2**31),
        test_pairs=options["test_pairs"],
        test_trials_per_session=options["trials_per_session"],
        lineup_size=options["lineup_size"],
        consent_text=consent_file.read_text(encoding="utf-8") if consent_file else DEFAULT_CONSENT_TEXTS[kind],
        consent_version=options["consent_version"],
    )
    with workspace.migrated_session_factory()() as db:
        if kind == StudyKind.FACES:
            study = create_study(db, runs[0], workspace.image_store, study_options)
        else:
            kind_options = KindOptions(
                kind=kind,
                faces=options["faces"],
                prompt=options["prompt"],
                exposures_ms=exposure_times(options["exposures_ms"]),
            )
            study = create_kind_study(db, runs, workspace.image_store, study_options, kind_options)
        db.commit()
        main_kind = MAIN_ITEM_KIND[kind]
        tests = sum(item.kind == main_kind for item in study.items)
        others = len(study.items) - tests
        measured = "test pairs" if kind == StudyKind.FACES else f"{main_kind.value} items"
        named = study.slug if kind == StudyKind.FACES else f"{study.slug} ({kind.value})"
        click.echo(f"study {named}: {tests} {measured}, {others} other items; rater URL /s/{study.slug}")
        for note in study.source["design_notes"]:
            click.echo(f"warning: {note}", err=True)


def exposure_times(text: str) -> tuple[int, ...]:
    """`--exposures-ms 250,500` as (250, 500); a ValueError that names the option for anything else."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise ValueError(f"--exposures-ms takes whole milliseconds separated by commas, not {text!r}") from error


@main.command("create-admin")
@click.option("--username", required=True)
@click.password_option(envvar="SURVEY_APP_ADMIN_PASSWORD")
@click.pass_obj
def create_admin_command(workspace: Workspace, username: str, password: str) -> None:
    """Create an admin login for the dashboard, or set a new password for an existing one."""
    if len(password) < 12:
        raise ValueError("the password must have at least 12 characters")
    with workspace.migrated_session_factory()() as db:
        admin = db.scalar(select(Admin).where(Admin.username == username))
        if admin is None:
            admin = Admin(username=username, session_generation=0)
            db.add(admin)
        else:
            end_other_sessions(admin)  # a new password ends every session of the old one
        admin.password_hash = generate_password_hash(password)
        db.commit()
    click.echo(f"admin {username} saved")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, help="0: any free port (printed).")
@click.option("--workers", default=None, type=int, help="Worker processes (default: one per CPU).")
@click.option(
    "--threads", default=None, type=int, help="Threads per worker process (default: 2 on SQLite, 4 on PostgreSQL)."
)
@click.option("--secure-cookies/--no-secure-cookies", default=False, help="Set behind HTTPS.")
@click.option(
    "--proxy-hops",
    default=0,
    show_default=True,
    help="Reverse proxies in front that set X-Forwarded-For/-Proto (the login throttle counts per client address).",
)
@click.pass_obj
def serve_command(
    workspace: Workspace,
    host: str,
    port: int,
    workers: int | None,
    threads: int | None,
    secure_cookies: bool,
    proxy_hops: int,
) -> None:
    """Serve the app with gunicorn (worker processes x threads)."""
    check_can_listen(host, port)
    workspace.migrated_session_factory()
    workers = workers if workers is not None else default_workers()
    threads = threads if threads is not None else default_threads(workspace.database_url)
    config = {
        "SECRET_KEY": workspace.secret_key(),
        "SURVEY_DATABASE_URL": workspace.database_url,
        "SURVEY_IMAGE_STORE": workspace.image_store,
        "SESSION_COOKIE_SECURE": secure_cookies,
        "SURVEY_SQLITE_PROCESS_LOCK": workers > 1,
        "SURVEY_PROXY_HOPS": proxy_hops,
    }
    StudyServer(lambda: create_app(config), host, port, workers, threads, " (admin: /admin/)").run()


@main.command("export")
@click.option("--study", "slug", required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--bootstrap-replicates", default=2000, show_default=True)
@click.pass_obj
def export_command(workspace: Workspace, slug: str, out_dir: Path, bootstrap_replicates: int) -> None:
    """Write answers/raters CSV, JSON, codebook and the results summary (JSON + markdown) to OUT."""
    with workspace.migrated_session_factory()() as db:
        study = db.scalar(select(Study).where(Study.slug == slug))
        if study is None:
            raise ValueError(f"no study {slug!r}")
        for path in write_export(db, study, out_dir, bootstrap_replicates):
            click.echo(path)

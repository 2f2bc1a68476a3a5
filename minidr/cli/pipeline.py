"""``minidr calibs|process|associate|release|run|verify``: the processing chain."""

from __future__ import annotations

import sys

import click

from ._common import message, progress, quiet_option

repo_argument = click.argument("repo", type=click.Path(file_okay=False))
jobs_option = click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(1, 256),
                           help="Frames processed in parallel (processes).")
executor_option = click.option("--executor", default="local", show_default=True,
                               help="'local' or 'dask://HOST:PORT' (a running Dask scheduler).")


def _open(repo):
    from ..repository import Repo

    return Repo(repo)


def _report_failures(report, quiet):
    for unit, msg in report.failed:
        click.echo(f"failed: {unit}: {msg}" if not msg.startswith(unit) else f"failed: {msg}", err=True)
    message(report.summary(), quiet)


@click.command()
@repo_argument
@jobs_option
@executor_option
@quiet_option
def calibs(repo, jobs, executor, quiet):
    """Build master bias, dark and flat frames per detector (and band); the masters of one
    kind are built in parallel with --jobs."""
    from .. import pipeline
    from ..repo.lock import repo_lock

    r = _open(repo)
    with repo_lock(r.path):
        rep = pipeline.make_calibs(r, progress, quiet, jobs=jobs, executor=executor)
    _report_failures(rep, quiet)
    sys.exit(1 if rep.failed else 0)


@click.command()
@repo_argument
@jobs_option
@executor_option
@quiet_option
def process(repo, jobs, executor, quiet):
    """Process every ingested science frame (ISR, PSF, detection, measurement, calibration).

    Resumable: frames already processed with the same settings and plug-ins are skipped
    (a changed config or plug-in reprocesses them). A frame that fails is reported and
    left out; the others go on.
    """
    from .. import pipeline
    from ..repo.lock import repo_lock

    r = _open(repo)
    with repo_lock(r.path):
        rep = pipeline.process(r, jobs, executor, progress, quiet)
    _report_failures(rep, quiet)
    sys.exit(1 if rep.failed and not rep.done and not rep.skipped else 0)


@click.command()
@repo_argument
@jobs_option
@executor_option
@quiet_option
def associate(repo, jobs, executor, quiet):
    """Associate Sources into Objects and run forced photometry on every frame."""
    from .. import pipeline
    from ..repo.lock import repo_lock

    r = _open(repo)
    with repo_lock(r.path):
        rep = pipeline.associate(r, jobs, executor, progress, quiet)
    message(rep.summary() + "".join(f", {v} {k}" for k, v in rep.details.items()), quiet)


@click.command()
@repo_argument
@click.argument("name")
@quiet_option
def release(repo, name, quiet):
    """Publish the associated catalog as the immutable release NAME (e.g. DR1)."""
    from .. import pipeline
    from ..repo.lock import repo_lock

    r = _open(repo)
    with repo_lock(r.path):
        rep = pipeline.publish(r, name, progress, quiet)
    message(f"release {name}: {rep.details['objects']} objects, {rep.details['sources']} sources, "
            f"{rep.details['forced']} forced sources -> {rep.details['path']}", quiet)


@click.command()
@repo_argument
@click.argument("name")
@jobs_option
@executor_option
@quiet_option
def run(repo, name, jobs, executor, quiet):
    """calibs + process + associate + release NAME, resumable after a kill."""
    from .. import pipeline
    from ..repo.lock import repo_lock

    r = _open(repo)
    with repo_lock(r.path):
        reports = pipeline.run(r, name, jobs, executor, progress, quiet)
    for rep in reports:
        _report_failures(rep, quiet)


@click.command()
@repo_argument
@click.argument("name", required=False)
def verify(repo, name):
    """Re-check every checksum of a release (default: the newest); exit 1 on any change."""
    from ..errors import ReleaseError
    from ..release.manifest import list_releases, verify_release
    from ..repo import layout

    r = _open(repo)
    names = list_releases(layout.releases_dir(r.path))
    if not names:
        raise ReleaseError(f"{r.path}: no release published yet")
    name = name or names[-1]
    if name not in names:
        raise ReleaseError(f"no release {name!r} in {r.path}; releases: {', '.join(names)}")
    problems = verify_release(layout.release_dir(r.path, name))
    for p in problems:
        click.echo(p)
    if problems:
        click.echo(f"release {name}: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo(f"release {name}: every file matches its checksum")

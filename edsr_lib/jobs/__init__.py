"""Folder jobs: many input files, one upscaled file each; the engine of ``edsr-lib upscale``.

The command line, :mod:`edsr_lib.integrations.ray` and Python callers run folders through
this package, so they read, name and write the same files (:mod:`~edsr_lib.jobs.planning`
plans, :mod:`~edsr_lib.jobs.running` runs, this module does both):

* :func:`plan_jobs` names the output of every input: ``<output_dir>/<stem><suffix>.<ext>``;
  with ``recursive`` (or a ``**`` glob) the input tree is mirrored under ``output_dir``.
  Inputs that are this run's own outputs are left out (a rerun never upscales its results
  again), and an input whose output would overwrite it is refused.
* :func:`run_jobs` runs jobs with one model. Reader threads decode the next images while
  the model works, images of one size and mode are batched, writer threads encode the
  results; a batch that fails is split until the failing image is found, so one bad file
  costs only itself. Every failure is one line naming the file. The run stops at the first
  full disk (files already written are kept), and after Ctrl-C or SIGTERM it lets the
  writes in flight finish, so no half-written or temporary file stays behind.
* :func:`upscale_folder` (:mod:`~edsr_lib.jobs.folder`) is both, with ``skip_existing``,
  shards (``shard=(i, n)``, or the process's share under ``torchrun``) and a :class:`Summary`.

Still images are built in. Another kind of input plugs in by file type: an object with
the :class:`JobKind` interface (the suffixes it takes, the suffix of its output, and a
``process`` that upscales one whole file with the run's :class:`~edsr_lib.Upscaler`) passed
in ``kinds=`` or registered once with :func:`register_kind`; the built-in kinds (video) are
listed in :data:`BUILTIN_KINDS`, so a folder's videos are found whatever was imported
before. Its files are planned, named, sharded, skipped and reported like
images; only the upscaling of one file is its own.

Example:
    >>> from edsr_lib.jobs import upscale_folder
    >>> summary = upscale_folder("photos/", "photos_x2/", model="edsr_baseline_x2")  # doctest: +SKIP
    >>> print(summary)  # doctest: +SKIP
    wrote 12 images to photos_x2 (0 failed, 0 skipped)
"""

from __future__ import annotations

from .folder import job_device, upscale_folder
from .planning import (
    BUILTIN_KINDS,
    SUFFIX_FIELDS,
    Job,
    JobKind,
    Plan,
    check_output_dir,
    check_suffix,
    default_kinds,
    expand_suffix,
    launcher_shard,
    make_job,
    plan_jobs,
    register_kind,
)
from .running import Interrupted, Log, Result, Summary, describe, run_jobs

__all__ = [
    "BUILTIN_KINDS",
    "SUFFIX_FIELDS",
    "Interrupted",
    "Job",
    "JobKind",
    "Log",
    "Plan",
    "Result",
    "Summary",
    "check_output_dir",
    "check_suffix",
    "default_kinds",
    "describe",
    "expand_suffix",
    "job_device",
    "launcher_shard",
    "make_job",
    "plan_jobs",
    "register_kind",
    "run_jobs",
    "upscale_folder",
]

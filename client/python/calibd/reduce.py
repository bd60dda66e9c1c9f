"""`calibd.reduce`: calibrate an `ccdproc.ImageFileCollection` (or a glob) into a folder.

    summary = calibd.reduce(ImageFileCollection("night/light"), client, "night/reduced",
                            detector="demo/ccd0", unit="electron")
    print(summary)          # an astropy Table: file, ok, code, median, flagged, masters

Three stages overlap: gRPC's request thread reads the next files straight into pooled buffers
and sends them (`_fitsio.read_fits_frame`), the calling thread converts each received result
chunk into its output file's bytes (`_filestream.FileAssembler`, with a blocking
`calibd.Client`), and a writer thread writes finished files. The work under each is in C
(NumPy, the kernel), which releases the GIL.

Thread safety: as the client's `calibrate`.
"""
from __future__ import annotations

import collections
import concurrent.futures
import functools
import glob as _glob
import os
import sys
from typing import Any, Deque, List, Optional, Tuple

from astropy.table import Table

from . import _errors
from .client import Client
from ._filestream import FileAssembler, FileResult
from ._fitsio import write_calibrated


def _files(collection: Any, imagetyp: Optional[str]) -> List[str]:
    if isinstance(collection, (str, os.PathLike)):
        path = os.fspath(collection)
        if os.path.isdir(path):
            path = os.path.join(path, "*.fits*")
        files = sorted(_glob.glob(path))
        if not files:
            raise _errors.NotFound(f"no files match {path}")
        return files
    if hasattr(collection, "files_filtered"):  # ccdproc.ImageFileCollection
        kw = {"imagetyp": imagetyp} if imagetyp else {}
        names = collection.files_filtered(include_path=True, **kw)
        return sorted(str(n) for n in names)
    return [os.fspath(p) for p in collection]


def output_name(out_dir: str, path: str) -> str:
    """out_dir/<input name>, with a compression suffix (.fz, .gz) dropped (as calibctl)."""
    name = os.path.basename(path)
    for suffix in (".fz", ".gz"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if not name.endswith((".fits", ".fit", ".fts")):
        name += ".fits"
    return os.path.join(out_dir, name)


def reduce(collection: Any, client: Any, output: str, detector: Optional[str] = None,
           imagetyp: Optional[str] = None, overwrite: bool = False, progress: Optional[bool] = None,
           writers: int = 1, **calibrate_options: Any) -> Table:
    """Calibrates every file of a collection into ``output``, one stream for all.

    Parameters
    ----------
    collection : ImageFileCollection, str or sequence of str
        A ccdproc `~ccdproc.ImageFileCollection` (filtered by ``imagetyp`` when given), a glob
        pattern, a folder, or a list of paths.
    client : calibd.Client
        The connection.
    output : str
        Folder for the calibrated files (created; names as calibctl's).
    detector : str, optional
        Passed to `Client.calibrate`, with ``calibrate_options`` (unit, policy, pins, ...).
    overwrite : bool
        Replace existing outputs; otherwise an existing output fails before anything is sent.
    progress : bool, optional
        A tqdm progress bar (when python3-tqdm is installed); default when stderr is a
        terminal.
    writers : int
        Threads writing the output files while the stream goes on (default 1: on a machine
        shared with the server, one is as fast as more).

    Returns
    -------
    astropy.table.Table
        One row per input: file, output, ok, code, message, median, flagged_fraction, masters.
    """
    files = _files(collection, imagetyp)
    os.makedirs(output, exist_ok=True)
    outs = [output_name(output, f) for f in files]
    if not overwrite:
        for o in outs:
            if os.path.exists(o):
                raise _errors.AlreadyExists(f"{o} exists; remove it or pass overwrite=True")
    bar = None
    if progress is None:
        progress = sys.stderr.isatty()
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=len(files), unit="frame", desc="calibrate")
        except ImportError:
            bar = None
    rows = []
    # Files are written on `writers` threads while the stream goes on receiving (and gRPC's
    # thread reading and sending the next inputs): the work under each is in C (NumPy's
    # conversion, the kernel's write), which releases the GIL. At most `writers` + 1 results
    # wait for their writer, so memory stays bounded.
    pending: Deque[Tuple[int, concurrent.futures.Future]] = collections.deque()
    writers = max(0, int(writers))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, writers),
                                                 thread_name_prefix="calibd-write")

    def settle(limit: int) -> None:
        while len(pending) > limit:
            _, future = pending.popleft()
            future.result()  # a write error is raised here (the stream is then cancelled)
            if bar is not None:
                bar.update(1)

    # A blocking client streams each result straight into its file's buffers (_filestream);
    # others (and results without the data plane) become CCDData, written by FitsWriter.
    planes = calibrate_options.get("planes")
    if isinstance(planes, str):
        planes = [p.strip() for p in planes.split(",") if p.strip()]
    if isinstance(client, Client) and (planes is None or "data" in planes) and \
            sys.byteorder == "little":  # FileAssembler's checksums read native words
        calibrate_options["_assembler"] = FileAssembler(sets=writers + 2)
    results = client.calibrate(files, detector=detector, **calibrate_options)
    try:
        for path, out, r in zip(files, outs, results):
            if isinstance(r, _errors.FrameError):
                rows.append((path, "", False, r.code.name, r.message, float("nan"),
                             float("nan"), ""))
                if bar is not None:
                    bar.update(1)
            else:
                masters = ", ".join(f"{m.kind} v{m.version} ({m.outcome})" for m in r.provenance)
                rows.append((path, out, True, "OK", "", r.statistics.get("median", float("nan")),
                             r.statistics.get("flagged_fraction", float("nan")), masters))
                write = (functools.partial(r.write, out, overwrite) if isinstance(r, FileResult)
                         else functools.partial(write_calibrated, r, out, overwrite))
                if writers:
                    job = pool.submit(write)
                else:  # written here, between receiving results
                    job = concurrent.futures.Future()
                    job.set_result(write())
                pending.append((len(rows) - 1, job))
                del r  # only the writer holds the result: its buffers come back when written
                settle(writers)
        settle(0)
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()  # cancels the stream when a write failed or the caller interrupted
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    return Table(rows=rows if rows else None,
                 names=("file", "output", "ok", "code", "message", "median",
                        "flagged_fraction", "masters"),
                 dtype=(str, str, bool, str, str, float, float, str))

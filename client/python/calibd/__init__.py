"""calibd: a Python client for the calibd calibration service.

CCDData in, CCDData out, over one gRPC stream; the versioned store of masters; builds with
ccdproc's option names.

    import calibd
    with calibd.Client("127.0.0.1:50051") as client:
        for ccd in client.calibrate(paths, detector="demo/ccd0", unit="electron"):
            ...

`calibd.aio.Client` is the same API on asyncio. Every failure is a `calibd.Error` subclass
carrying its `grpc.StatusCode`; a frame that fails inside a stream is yielded as a
`calibd.FrameError` in its place.
"""
from ._errors import (Aborted, AlreadyExists, Cancelled, DataLoss, DeadlineExceeded, Error,
                      FailedPrecondition, FrameError, Internal, InvalidArgument, NotFound,
                      OutOfRange, PermissionDenied, ResourceExhausted, Unauthenticated,
                      Unavailable, Unimplemented, Unknown)
from ._requests import TLS, Stored
from ._noise import NoiseProduct
from ._types import (AppliedMaster, BuildResult, CalibratedFrame, Candidate, Certification,
                     DqBit, History, HistoryEvent, MasterVersion, PutResult, Selection,
                     TrailEntry)
from .client import Client
from .reduce import reduce

__version__ = "0.1.0"

__all__ = [
    "Client", "aio", "reduce", "TLS", "Stored", "NoiseProduct",
    "CalibratedFrame", "MasterVersion", "Certification", "AppliedMaster", "Candidate",
    "TrailEntry", "Selection", "History", "HistoryEvent", "BuildResult", "PutResult", "DqBit",
    "Error", "FrameError", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded",
    "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
    "Unauthenticated",
]

from . import aio  # noqa: E402,F401  (calibd.aio.Client)

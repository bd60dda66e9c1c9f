"""Result types of the calibd client: plain dataclasses built from the calibd.v1 messages, and
`CalibratedFrame`, the `CCDData` that `Client.calibrate` yields.

Every dataclass keeps the message it came from as ``.proto`` (for fields added to the API later).

Thread safety: values; do not mutate one from several threads.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any, Dict, List, Optional

import numpy as np
from astropy.nddata import CCDData

from ._convert import from_timestamp
from ._proto import types_pb2

_OUTCOMES = {
    types_pb2.SELECTION_OUTCOME_CERTIFIED: "certified",
    types_pb2.SELECTION_OUTCOME_PINNED: "pinned",
    # Value 3: NEAREST (the API's old name for it was FALLBACK): the nearest matching version.
    3: "nearest",
    types_pb2.SELECTION_OUTCOME_MISS: "miss",
    types_pb2.SELECTION_OUTCOME_SKIPPED: "skipped",
}


def outcome_name(value: int) -> str:
    return _OUTCOMES.get(value, "unspecified")


@dataclasses.dataclass
class Certification:
    """A version certified for frames taken in ``[begin, end)`` (``end`` None = open-ended)."""
    id: int
    series_id: int
    version: int
    begin: Optional[_dt.datetime]
    end: Optional[_dt.datetime]
    created_at: Optional[_dt.datetime]
    actor: str
    reason: str
    proto: Any = dataclasses.field(repr=False, compare=False, default=None)

    @classmethod
    def from_proto(cls, m: Any) -> "Certification":
        return cls(m.id, m.series_id, m.version, from_timestamp(m.begin), from_timestamp(m.end),
                   from_timestamp(m.created_at), m.actor, m.reason, m)


@dataclasses.dataclass
class MasterVersion:
    """One stored master: a version of a series (detector, kind, configuration)."""
    detector: str
    kind: str
    version: int
    sha256: str
    series_id: int
    configuration: Dict[str, str]
    size_bytes: int
    shape: tuple
    created_at: Optional[_dt.datetime]
    obs_time: Optional[_dt.datetime]
    detector_version: int
    actor: str
    attributes: Dict[str, str]
    provenance: Dict[str, Any]
    statistics: Dict[str, float]
    certifications: List[Certification]
    decertified_at: Optional[_dt.datetime]
    superseded_at: Optional[_dt.datetime]
    proto: Any = dataclasses.field(repr=False, compare=False, default=None)

    @classmethod
    def from_proto(cls, m: Any) -> "MasterVersion":
        prov = {"input_sha256": list(m.provenance.input_sha256),
                "options": dict(m.provenance.options),
                "software_version": m.provenance.software_version}
        return cls(m.detector, m.kind, m.version, m.sha256, m.series_id, dict(m.configuration),
                   m.size_bytes, (m.height, m.width), from_timestamp(m.created_at),
                   from_timestamp(m.obs_time), m.detector_version, m.actor, dict(m.attributes),
                   prov, dict(m.statistics),
                   [Certification.from_proto(c) for c in m.certifications],
                   from_timestamp(m.decertified_at), from_timestamp(m.superseded_at), m)

    @property
    def certified(self) -> bool:
        return bool(self.certifications)


@dataclasses.dataclass
class AppliedMaster:
    """A master applied to a frame: what reproducing the result needs."""
    kind: str
    version: int
    sha256: str
    outcome: str
    age_seconds: float
    # The recipe step it served ("bias", "dark", "read_noise", "gain", "bad_pixels"; a
    # synthesized dark: kind "noise_model" or "dark_current", used_as "dark"), and how.
    used_as: str = ""
    detail: str = ""
    proto: Any = dataclasses.field(repr=False, compare=False, default=None)

    @classmethod
    def from_proto(cls, m: Any) -> "AppliedMaster":
        return cls(m.kind, m.version, m.sha256, outcome_name(m.outcome), m.age_seconds,
                   getattr(m, "used_as", "") or m.kind, getattr(m, "detail", ""), m)


@dataclasses.dataclass
class Candidate:
    """A version (or, with ``version == 0``, a whole series) selection looked at."""
    series_id: int
    version: int
    sha256: str
    configuration: Dict[str, str]
    certification: Optional[Certification]
    chosen: bool
    reason: str

    @classmethod
    def from_proto(cls, m: Any) -> "Candidate":
        cert = Certification.from_proto(m.certification) if m.HasField("certification") else None
        return cls(m.series_id, m.version, m.sha256, dict(m.configuration), cert, m.chosen,
                   m.reason)


@dataclasses.dataclass
class TrailEntry:
    """Why one kind's master was chosen (or why nothing was)."""
    kind: str
    outcome: str
    code: int
    message: str
    version: int
    sha256: str
    candidates: List[Candidate]
    candidates_omitted: int

    @classmethod
    def from_proto(cls, m: Any) -> "TrailEntry":
        return cls(m.kind, outcome_name(m.outcome), m.status.code, m.status.message, m.version,
                   m.sha256, [Candidate.from_proto(c) for c in m.candidates],
                   m.candidates_omitted)


@dataclasses.dataclass
class Selection:
    """What `Client.select` found: the chosen masters and the trail explaining them."""
    masters: List[AppliedMaster]
    trail: List[TrailEntry]
    frame_time: Optional[_dt.datetime]
    configuration: Dict[str, str]
    proto: Any = dataclasses.field(repr=False, compare=False, default=None)

    @classmethod
    def from_proto(cls, m: Any) -> "Selection":
        return cls([AppliedMaster.from_proto(a) for a in m.masters],
                   [TrailEntry.from_proto(t) for t in m.trail], from_timestamp(m.frame_time),
                   dict(m.configuration), m)


@dataclasses.dataclass
class HistoryEvent:
    """One audit-log entry."""
    id: int
    time: Optional[_dt.datetime]
    actor: str
    action: str
    subject: str
    details: str

    @classmethod
    def from_proto(cls, m: Any) -> "HistoryEvent":
        return cls(m.id, from_timestamp(m.time), m.actor, m.action, m.subject, m.details)


@dataclasses.dataclass
class History:
    """The versions of the matching series (oldest first) and their audit log."""
    versions: List[MasterVersion]
    events: List[HistoryEvent]


@dataclasses.dataclass
class BuildResult:
    """What `Client.build` made."""
    version: MasterVersion
    inputs: int
    rejected_fraction: float
    noise: float
    combine_seconds: float
    certification: Optional[Certification]
    input_sha256: List[str]
    proto: Any = dataclasses.field(repr=False, compare=False, default=None)

    @classmethod
    def from_proto(cls, m: Any) -> "BuildResult":
        cert = Certification.from_proto(m.certification) if m.HasField("certification") else None
        s = m.statistics
        return cls(MasterVersion.from_proto(m.version), s.inputs, s.rejected_fraction, s.noise,
                   s.combine_seconds, cert, list(m.input_sha256), m)


@dataclasses.dataclass
class PutResult:
    """What `Client.put_master` stored (``already_existed``: identical bytes were there)."""
    version: MasterVersion
    already_existed: bool


@dataclasses.dataclass
class DqBit:
    """A data-quality bit: its value, name and meaning."""
    bit: int
    name: str
    description: str


def statistics_dict(m: Any) -> Dict[str, float]:
    """``FrameStatistics`` as a dict of its fields."""
    return {f.name: getattr(m, f.name) for f in m.DESCRIPTOR.fields}


class CalibratedFrame(CCDData):
    """A calibrated frame: a `~astropy.nddata.CCDData` (data, `StdDevUncertainty`, mask =
    DQ != 0, ``meta`` = the output header, ``unit`` ADU or electron) plus what calibd adds.

    Attributes
    ----------
    dq : numpy.ndarray or None
        The data-quality bits (uint16; `Client.dq_bits` names them).
    provenance : list of AppliedMaster
        Each master applied: kind, version, sha256, how it was chosen.
    trail : list of TrailEntry
        Why each master was chosen (or not), with the candidates examined.
    statistics : dict
        The server's statistics of the result (median, mean, stddev, flagged, ...).
    frame_id : str
        The frame's id (file name or given id).
    compute_seconds : float
        Server-side compute time.
    """

    dq: Optional[np.ndarray] = None
    provenance: List[AppliedMaster] = []
    trail: List[TrailEntry] = []
    statistics: Dict[str, float] = {}
    frame_id: str = ""
    compute_seconds: float = 0.0

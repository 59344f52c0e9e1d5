"""Live sources on the server: named by the operator (`human3r serve --live NAME=URL`), asked for by name.

A client never supplies a URL. A `submit` with ``live`` = NAME starts a live job on the configured
source; the job's ``video`` is the label 'live:NAME' (results, status and result files name it so;
the URL, which may carry credentials, stays on the server). The worker's job runner receives the
`LiveSpec` in place of that label (`resolving_runner`).
"""
from __future__ import annotations

from typing import Iterable, Mapping

from blender_addon.core.protocol import ErrorCode, ProtocolError
from backend.video.live import LiveSpec


def table(specs: Iterable[LiveSpec]) -> dict[str, LiveSpec]:
    """name -> spec; ValueError on a repeated name."""
    out: dict[str, LiveSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise ValueError(f"live source {spec.name!r} is configured twice")
        out[spec.name] = spec
    return out


def describe(specs: Mapping[str, LiveSpec]) -> list[dict]:
    """What clients may know of the live sources: [{name, kind}] (kind = URL scheme, never the URL)."""
    return [{"name": s.name, "kind": s.kind} for s in specs.values()]


def check_request(name, specs: Mapping[str, LiveSpec]) -> LiveSpec:
    """The configured source a client asked for, or ProtocolError 'path_not_allowed' that says what
    to ask for instead (a URL is never opened on a client's word)."""
    offered = ", ".join(sorted(specs)) or "none (start the server with --live NAME=URL)"
    if not isinstance(name, str) or not name:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "'submit'.live must be the name of a live source")
    if "://" in name or ":" in name or "/" in name:
        raise ProtocolError(ErrorCode.PATH_NOT_ALLOWED,
                            f"{name!r} looks like a URL or a device path: clients cannot make the server open "
                            f"streams; ask for a live source by name (this server offers: {offered})")
    spec = specs.get(name)
    if spec is None:
        raise ProtocolError(ErrorCode.NOT_FOUND, f"no live source named {name!r} (this server offers: {offered})")
    return spec


def resolving_runner(job_runner, specs: Mapping[str, LiveSpec]):
    """`job_runner` with the label 'live:NAME' of a live job replaced by its `LiveSpec`."""
    by_label = {spec.label: spec for spec in specs.values()}
    if not by_label:
        return job_runner

    def run(engine, video, options, job_id, cancel):
        return job_runner(engine, by_label.get(video, video), options, job_id, cancel)

    return run

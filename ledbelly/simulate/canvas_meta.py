"""The ``metadata`` half of a Canvas raw event, shared by every builder."""

from __future__ import annotations

from ledbelly.simulate.state import Payload, Sim
from ledbelly.simulate.world import (
    HOST,
    LTI_GUID,
    ROOT_ID,
    ROOT_UUID,
    Course,
    User,
    uuid4,
)

SIS_IMPORT = "SIS::CSV::ImportRefactored#run_parallel_importer"


def request_meta(
    g: Sim,
    name: str,
    ts: str,
    u: User,
    c: Course | None,
    role: str | None,
    method: str,
    url: str,
    referrer: str | None,
    ctx_type: str = "Course",
    ctx_id: str | None = None,
) -> Payload:
    """User-generated metadata (an HTTP request triggered the event)."""
    m: Payload = {
        "root_account_uuid": ROOT_UUID,
        "root_account_id": ROOT_ID,
        "root_account_lti_guid": LTI_GUID,
        "user_login": u.login,
        "user_account_id": ROOT_ID,
        "user_sis_id": u.sis_id,
        "user_id": u.gid,
        "time_zone": u.time_zone,
    }
    if c is not None:
        m["context_type"] = ctx_type
        m["context_id"] = ctx_id or c.gid
        m["context_sis_source_id"] = c.sis if ctx_type == "Course" else None
        m["context_account_id"] = c.account
        m["context_role"] = role
    m["request_id"] = uuid4(g.rng)
    m["session_id"] = u.session_id
    m["hostname"] = HOST
    m["http_method"] = method
    m["user_agent"] = u.user_agent
    m["client_ip"] = u.client_ip
    m["url"] = url
    m["referrer"] = referrer
    m["producer"] = "canvas"
    m["event_name"] = name
    m["event_time"] = ts
    return m


def system_meta(g: Sim, name: str, ts: str, job_tag: str) -> Payload:
    """System-generated metadata (a background job triggered the event)."""
    return {
        "root_account_uuid": ROOT_UUID,
        "root_account_id": ROOT_ID,
        "root_account_lti_guid": LTI_GUID,
        "job_id": str(g.rng.randint(10**15, 10**16 - 1)),
        "job_tag": job_tag,
        "producer": "canvas",
        "event_name": name,
        "event_time": ts,
    }

"""Pure decisions of idempotent apply: which patch brings a live child back to what the builders want.

The operator applies children like `kubectl apply` (client-side), not with server-side apply, so it
runs on any API server that speaks JSON merge patch. Each child carries the operator's last applied
version of itself in the `telemetry.otlp-operator.io/last-applied` annotation, and the patch is a
three-way merge of (last applied, desired, live):

- a field the builders set that differs in the live object (edited by someone, or changed in the spec)
  is set to the desired value; lists are compared element by element and replaced whole;
- a field the builders set last time but no longer set is removed (null in the merge patch), unless it
  is in `_NEVER_REMOVED` (`spec.replicas`: when autoscaling takes over a Deployment, removing the
  field would reset it to 1 before the autoscaler acts);
- fields only the server or other controllers set (defaults, clusterIP, status, extra labels) are
  never touched, so a live object is "in sync" when the desired object is a subset of it.

An empty patch means the child is in sync and nothing is written.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from otlp_operator import naming

LAST_APPLIED = f"{naming.PREFIX}last-applied"
_NEVER_REMOVED = {("spec", "replicas")}


def with_last_applied(desired: dict[str, Any]) -> dict[str, Any]:
    """`desired` annotated with itself (compact, sorted JSON), ready to create."""
    stamped = copy.deepcopy(desired)
    annotations = stamped["metadata"].setdefault("annotations", {})
    annotations[LAST_APPLIED] = json.dumps(desired, sort_keys=True, separators=(",", ":"))
    return stamped


def last_applied(live: dict[str, Any]) -> dict[str, Any]:
    """The version the operator applied last (empty when none or unreadable)."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def subset(desired: Any, live: Any) -> bool:
    """True when every field of `desired` is in `live` with the same value (server defaults aside)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and subset(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return bool(desired == live) and type(desired) is type(live)


def patch_for(desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch from `live` to `desired` (empty when in sync), owner references merged."""
    stamped = with_last_applied(desired)
    references = merged_owner_references(desired, live)
    if references:
        stamped["metadata"]["ownerReferences"] = references
    return _diff(last_applied(live), stamped, live, ())


def _diff(last: Any, desired: dict[str, Any], live: Any, path: tuple[str, ...]) -> dict[str, Any]:
    live_map = live if isinstance(live, dict) else {}
    last_map = last if isinstance(last, dict) else {}
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = live_map.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            nested = _diff(last_map.get(key), want, have, (*path, key))
            if nested:
                patch[key] = nested
        elif key not in live_map or not subset(want, have):
            patch[key] = want
    for key in last_map.keys() - desired.keys():
        if key in live_map and (*path, key) not in _NEVER_REMOVED and path != ("metadata",):
            patch[key] = None
    return patch


def merged_owner_references(desired: dict[str, Any], live: dict[str, Any]) -> list[dict[str, Any]]:
    """The live owner references with the desired controller reference in place of any older one."""
    wanted = desired["metadata"].get("ownerReferences") or []
    uids = {ref["uid"] for ref in wanted}
    others = [
        ref
        for ref in (live.get("metadata") or {}).get("ownerReferences") or []
        if ref.get("uid") not in uids and not ref.get("controller")
    ]
    return [*others, *wanted]


def controller_uid(obj: dict[str, Any]) -> str | None:
    """The uid of the object's controller (the owner reference with `controller: true`), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def foreign_controller(live: dict[str, Any], owner_uid: str) -> str | None:
    """ "Kind/name" of another controller that owns `live`, or None when it is ours or unowned."""
    for ref in (live.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") != owner_uid:
            return f"{ref.get('kind')}/{ref.get('name')}"
    return None

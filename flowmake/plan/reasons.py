"""Why a target is stale: the reasons (``Reason``, ``ReasonDetail``: old → new) and the
diff of two keys' parts that names them (``diff_parts``), for ``status``, ``why`` and
``build -v``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, NamedTuple


class Reason(Enum):
    NEW = "never built"
    CODE = "code changed"
    COMMAND = "command changed"
    PARAM = "param changed"
    INPUT = "input changed"
    INPUT_ADDED = "input added"
    INPUT_REMOVED = "input removed"
    OUTPUTS = "declared outputs changed"
    ENV = "env changed"
    OUTPUT_MISSING = "output missing"
    OUTPUT_UNRECORDED = "output not recorded"  # an entry without it (a flow.lock cut or edited)
    OUTPUT_MODIFIED = "output modified"
    ALWAYS = "always"
    FORCED = "forced"
    UPSTREAM = "upstream stale"
    DEP = "dependency changed"
    KEY = "key changed"


def _show(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value)


class ReasonDetail(NamedTuple):
    """One reason a target is stale, with the values that differ where there are some."""

    reason: Reason
    subject: str = ""
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        r = self.reason
        if r is Reason.PARAM:
            return f"param {self.subject}: {_show(self.old)} → {_show(self.new)}"
        if r is Reason.FORCED:
            return "forced (-B)"
        if r is Reason.CODE and self.subject:
            return f"code changed: {self.subject}"
        return f"{r.value}: {self.subject}" if self.subject else r.value

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"reason": self.reason.name.lower(), "text": str(self)}
        if self.subject:
            data["subject"] = self.subject
        if self.old is not None or self.new is not None:
            data["old"], data["new"] = self.old, self.new
        return data


def _canonical(value: Any) -> str:
    """A value as the key sees it: 1, 1.0 and true differ (Python's == says they don't)."""
    return json.dumps(value, sort_keys=True, default=str)


# What a python target's action reads as (``Call.text``): ``python module:function``,
# maybe with `` (version V)``. A shell command that starts ``python `` is a command.
_CALL_TEXT = re.compile(r"python [\w.]+:[\w.]+( \(version .*\))?")


def diff_parts(old: Mapping[str, Any], new: Mapping[str, Any], *,
               call: bool | None = None) -> list[ReasonDetail]:
    """Every difference between two keys' parts, as reasons (old → new).

    ``call`` says whether the target is a python callable (its action is code); by
    default that is read from the parts."""
    reasons: list[ReasonDetail] = []
    if old.get("action") != new.get("action"):
        if call is None:
            call = "code" in new or bool(_CALL_TEXT.fullmatch(str(new.get("action", ""))))
        reasons.append(ReasonDetail(Reason.CODE if call else Reason.COMMAND, "",
                                    old.get("action"), new.get("action")))
    old_code, new_code = old.get("code", {}), new.get("code", {})
    for module in sorted(set(old_code) | set(new_code)):
        if old_code.get(module) != new_code.get(module):
            reasons.append(ReasonDetail(Reason.CODE, module, old_code.get(module),
                                        new_code.get(module)))
    reasons += _param_reasons(old, new)
    o_env, n_env = old.get("env", {}), new.get("env", {})
    for name in sorted(set(o_env) | set(n_env)):
        if o_env.get(name) != n_env.get(name):
            reasons.append(ReasonDetail(Reason.ENV, name))
    o_dep, n_dep = old.get("deps", {}), new.get("deps", {})
    for name in sorted(set(o_dep) | set(n_dep)):
        if o_dep.get(name) != n_dep.get(name):
            reasons.append(ReasonDetail(Reason.DEP, name, o_dep.get(name), n_dep.get(name)))
    o_in, n_in = old.get("inputs", {}), new.get("inputs", {})
    for path in sorted(set(o_in) | set(n_in)):
        if path not in o_in:
            reasons.append(ReasonDetail(Reason.INPUT_ADDED, path, None, n_in[path]))
        elif path not in n_in:
            reasons.append(ReasonDetail(Reason.INPUT_REMOVED, path, o_in[path], None))
        elif o_in[path] != n_in[path]:
            reasons.append(ReasonDetail(Reason.INPUT, path, o_in[path], n_in[path]))
    if old.get("outputs") != new.get("outputs"):
        reasons.append(ReasonDetail(Reason.OUTPUTS, "", old.get("outputs"), new.get("outputs")))
    return reasons


def _changed(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> list[ReasonDetail]:
    return [ReasonDetail(Reason.PARAM, prefix + name, old.get(name), new.get(name))
            for name in sorted(set(old) | set(new))
            if _canonical(old.get(name)) != _canonical(new.get(name))
            or (name in old) != (name in new)]


def _param_reasons(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ReasonDetail]:
    """Changed params, each change once: a target param set from a project param
    (``ridge = "${params.ridge}"``, or ``"-${params.ridge}"`` inside a string) changes with
    it, and only the project param (``param params.ridge: 0.1 → 1.0``) is named."""
    project = _changed(old.get("project_params", {}), new.get("project_params", {}), "params.")
    own = _changed(old.get("params", {}), new.get("params", {}), "")
    return [r for r in own if not any(_follows(r, p) for p in project)] + project


def _follows(own: ReasonDetail, project: ReasonDetail) -> bool:
    """Whether a target param's change is the project param's change carried into it."""
    if own.old is None or own.new is None or project.old is None or project.new is None:
        return False
    if _canonical(own.old) == _canonical(project.old) and \
            _canonical(own.new) == _canonical(project.new):
        return True  # the param is exactly the reference
    if not isinstance(own.old, str) or not isinstance(own.new, str):
        return False
    from flowmake.config.interpolate import format_value

    before, after = format_value(project.old), format_value(project.new)
    return before in own.old and own.old.replace(before, after) == own.new

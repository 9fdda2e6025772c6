"""The layering rule of issue 16: outside ``samplers/``, ``models/`` and ``fast/`` the package never
branches on a method or model name; what differs per method is the method's own metadata."""

from __future__ import annotations

import re
from pathlib import Path

import recsampling

NAMES = ("bpr", "popularity", "dns", "inbatch", "bpo", "nbpo", "pointwise", "relmf", "ubpr", "dla", "mf", "twotower",
         "implicit")
_N = "(" + "|".join(NAMES) + ")"
_Q = rf"['\"]{_N}['\"]"
#: a comparison with a name, a membership test in a literal holding one, a table keyed by one
PATTERNS = [re.compile(p) for p in (rf"(==|!=)\s*{_Q}", rf"{_Q}\s*(==|!=)", rf"\bin\s*[(\[{{][^)\]}}]*{_Q}",
                                    rf"{_Q}\s*:\s*[(\[{{]", rf"{_Q}\s*:\s*dict\(")]
EXEMPT = ("samplers", "models", "fast")


def offending_lines(root: Path) -> list[str]:
    """``path:line: text`` of every line under ``root`` (outside :data:`EXEMPT`) that names a method."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in EXEMPT:
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if any(p.search(line) for p in PATTERNS):
                out.append(f"{rel}:{no}: {line.strip()}")
    return out


def test_the_patterns_catch_what_the_rule_forbids(tmp_path):
    (tmp_path / "bad.py").write_text('if name == "nbpo":\n    pass\nif s in ("relmf", "ubpr"):\n    pass\n'
                                     'T = {"mf": (1, 2)}\nU = {"bpr": dict(a=1)}\nok = make(model="mf")\n')
    (tmp_path / "samplers").mkdir()
    (tmp_path / "samplers" / "fine.py").write_text('if name == "nbpo":\n    pass\n')
    assert [line.split(":")[1] for line in offending_lines(tmp_path)] == ["1", "3", "5", "6"]


def test_no_method_or_model_name_is_branched_on_outside_samplers_models_and_fast():
    root = Path(recsampling.__file__).parent
    assert offending_lines(root) == []

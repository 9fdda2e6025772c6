"""The scripts' shared flags and output."""

from __future__ import annotations

import argparse
import json

import pytest

from recsampling.bench.flags import DATA_DIR, add_flags, emit, result_path, write_results


def test_common_flags_with_a_script_default():
    p = add_flags(argparse.ArgumentParser(), "data_dir", "threads", "json", "no_write", defaults={"threads": 2})
    a = p.parse_args([])
    assert (a.data_dir, a.threads, a.json, a.no_write) == (str(DATA_DIR), 2, False, False)
    assert p.parse_args(["--threads", "3", "--json"]).threads == 3
    with pytest.raises(SystemExit):
        p.parse_args(["--threads", "0"])


def test_unknown_or_unrequested_flags_are_refused():
    with pytest.raises(ValueError, match="nope"):
        add_flags(argparse.ArgumentParser(), "nope")
    with pytest.raises(ValueError, match="seed"):
        add_flags(argparse.ArgumentParser(), "json", defaults={"seed": 1})


def test_emit_puts_the_json_last_and_write_results(tmp_path, capsys):
    emit({"a": 1}, "text", as_json=True)
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1]) == {"a": 1} and "text" in err
    emit({"a": 1}, "text", as_json=False, footer="end")
    assert capsys.readouterr().out == "text\nend\n"
    path = write_results(tmp_path / "r" / "x.json", {"a": 1}, "md")
    assert json.loads(path.read_text()) == {"a": 1} and (tmp_path / "r" / "x.md").read_text() == "md\n"
    write_results(path, {"a": 2}, indent=2)  # replaced whole, no temporary file left behind
    assert path.read_text() == '{\n  "a": 2\n}'
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.json", "x.md"]


def test_result_path_joins_the_parts_that_are_set():
    script = "/somewhere/benchmarks/mnar.py"
    assert result_path(script, "mnar", "coat", True and "quick", tag="t").as_posix() == \
        "/somewhere/benchmarks/results/mnar_coat_quick_t.json"
    assert result_path(script, "mnar", "coat", False and "quick", "", None, tag="").name == "mnar_coat.json"
    assert result_path(script, "mnar", out="elsewhere.json").as_posix() == "elsewhere.json"
    assert result_path(script, "mf-bpr", folder="tuning").as_posix() == \
        "/somewhere/benchmarks/results/tuning/mf-bpr.json"
    with pytest.raises(ValueError):
        result_path(script, "", tag="")


def test_command_line_names_the_script_and_its_arguments():
    from recsampling.bench.flags import command_line

    assert command_line("/a/b/benchmarks/x.py", ["--quick", "--seeds", "2"]) == "python benchmarks/x.py --quick --seeds 2"

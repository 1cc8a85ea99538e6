"""Tests of ``ionflow rank``: ordering by Xi then MPE, CSV content, MD columns and figures."""

from __future__ import annotations

import csv
import json

import pytest

from ionflow.cli import main


def _desc(path, name, xi, mpe, axes=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "structure": name, "xi": xi, "mpe_eV": mpe, "mpe_axis_eV": axes or [mpe, None, None],
        "fv_connected": {"0.5": 0.01}, "fv_disconnected": {"0.5": 0.1}, "n_ions": 1,
        "scan_cell_kind": "supercell", "supercell": [1, 2, 2], "calculator": "sevennet:7net-0"}))
    return str(path)


def test_ranking_order_csv_and_figures(tmp_path):
    files = [
        _desc(tmp_path / "A" / "descriptors.json", "A", 0.5, 0.40),
        _desc(tmp_path / "B" / "descriptors.json", "B", 0.9, 0.80),
        _desc(tmp_path / "C" / "descriptors.json", "C", 0.5, 0.30),
        _desc(tmp_path / "D" / "descriptors.json", "D", 0.5, None, [None, None, None]),
        _desc(tmp_path / "E" / "descriptors.json", "E", 0.0, 0.10),
    ]
    arr = tmp_path / "arrhenius_B.json"
    arr.write_text(json.dumps({"groups": [
        {"structure": "B", "model": "m0", "tracer": {"sigma_300K_S_cm": {"mean": 1.0}}},
        {"structure": "B", "model": "ensemble",
         "tracer": {"sigma_300K_S_cm": {"mean": 2e-3}, "Ea_eV": {"mean": 0.3}},
         "full": {"sigma_300K_S_cm": {"mean": 3e-3}, "Ea_eV": {"mean": 0.28}}}]}))
    out, fig, mdfig = tmp_path / "ranking.csv", tmp_path / "top.png", tmp_path / "md.png"
    rc = main(["rank", *files, "-o", str(out), "--figure", str(fig), "--md", str(arr),
               "--md-figure", str(mdfig), "--summary", str(tmp_path / "r.json")])
    assert rc == 0
    rows = list(csv.DictReader(out.open()))
    # Xi descending; at equal Xi lower MPE first and a non-percolating (null) MPE last
    assert [r["structure"] for r in rows] == ["B", "C", "A", "D", "E"]
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["sigma_tracer_300K_S_cm"] == "0.002" and rows[0]["md_model"] == "ensemble"
    assert rows[0]["Ea_full_eV"] == "0.28"
    assert rows[3]["mpe_eV"] == "" and rows[1]["sigma_tracer_300K_S_cm"] == ""
    assert rows[0]["supercell"] == "1x2x2"
    assert fig.stat().st_size > 1000 and mdfig.stat().st_size > 1000
    summ = json.loads((tmp_path / "r.json").read_text())
    assert summ["provenance"]["stage"] == "rank" and summ["ranking"][0]["structure"] == "B"


def test_name_falls_back_to_directory_and_duplicates_rejected(tmp_path, capsys):
    p = tmp_path / "S1" / "descriptors.json"
    _desc(p, None, 0.3, 0.5)
    out = tmp_path / "r.csv"
    assert main(["rank", str(p), "-o", str(out)]) == 0
    assert list(csv.DictReader(out.open()))[0]["structure"] == "S1"
    q = _desc(tmp_path / "x" / "descriptors.json", "S1", 0.1, 0.2)
    assert main(["rank", str(p), q, "-o", str(tmp_path / "r2.csv")]) == 2
    assert "duplicate structure names" in capsys.readouterr().err


@pytest.mark.parametrize("content, msg", [
    ("{", "not valid JSON"),
    (json.dumps({"xi": 0.1}), "[mpe_eV]"),
])
def test_bad_descriptor_files(tmp_path, capsys, content, msg):
    p = tmp_path / "bad.json"
    p.write_text(content)
    assert main(["rank", str(p), "-o", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and msg in err
    assert not (tmp_path / "r.csv").exists()

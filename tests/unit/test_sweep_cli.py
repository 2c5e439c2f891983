"""``verifier sweep``: a run (sequential, no dask), the table preview, resume, dry run, exit statuses."""

from __future__ import annotations

import textwrap

from verifier.cli import main

SPEC = textwrap.dedent("""
    [sweep]
    out = "res"
    table = "csv"
    plots = ["eps_rel"]
    plot_axes = ["steps"]

    [grid]
    width = [2, 3]
    steps = [10, 40]

    [data]
    generator = "linearly_separable"
    n = 12
    margin = 0.2
    seed = 1

    [network]
    builder = "mlp"
    widths = [2, "{width}", 1]

    [train]
    steps = "{steps}"
    lr = 0.5

    [[check]]
    kind = "kkt"
""")


def test_cli_sweep_runs_resumes_and_plots(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text(SPEC)
    assert main(["sweep", str(p), "--dry-run"]) == 0
    assert "4 cells (width 2 x steps 2 x 1 check(s)); 0 already done" in capsys.readouterr().out
    assert main(["sweep", str(p), "--sequential"]) == 0
    out = capsys.readouterr().out
    assert "4 cells: 4 computed, 0 already done, 0 error(s)" in out
    assert out.splitlines()[0].split()[:5] == ["cell", "width", "steps", "check", "status"]
    assert (tmp_path / "res" / "results.csv").exists()
    assert (tmp_path / "res" / "plots" / "eps_rel_vs_steps.png").stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "res" / "plots").iterdir()) == ["eps_rel_vs_steps.png"]
    assert main(["sweep", str(p), "--sequential", "--quiet"]) == 0
    assert "4 cells: 0 computed, 4 already done" in capsys.readouterr().out
    assert main(["sweep", str(p), "--dry-run"]) == 0
    assert "4 already done" in capsys.readouterr().out


def test_cli_malformed_spec_is_one_line_and_status_2(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text(SPEC.replace('builder = "mlp"', 'builder = "mlpp"'))
    assert main(["sweep", str(p), "--sequential"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "field 'network.builder' must be one of mlp, cnn, diagonal_linear" in err
    p.write_text(SPEC.replace("[[check]]\nkind = \"kkt\"", "[[check]]\nkind = \"kkt\"\ntol = -1"))
    assert main(["sweep", str(p)]) == 2
    assert "field 'check[0].tol' must be a number >= 0, got -1" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "none.toml")]) == 2
    assert "cannot read sweep spec" in capsys.readouterr().err

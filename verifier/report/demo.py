"""The whole story on a built-in data set, as one function (behind ``make demo`` and the screenshot).

train -> check KKT -> split a neuron -> check the embedding -> certify both ->
re-check both certificates exactly -> write the report.

>>> import tempfile
>>> r = run_demo(tempfile.mkdtemp(), steps=200, n=12, hidden=8, quiet=True)
>>> r["kkt_ok"], r["embedding_ok"], r["report"].name
(True, True, 'report.html')
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_demo(out: str | Path, *, steps: int = 3000, n: int = 40, hidden: int = 16, seed: int = 0,
             split: str = "layer=1,neuron=3,ratios=3/5,4/5", quiet: bool = False) -> dict[str, Any]:
    """Run the demo into ``out`` and return the paths and verdicts; prints progress unless ``quiet``."""
    import verifier
    from verifier.certificates import certify_embedding, certify_kkt, check_certificate, make_split
    from verifier.datasets import two_clusters_xor

    from . import trajectory_deviation, write_report

    def say(msg: str) -> None:
        if not quiet:
            print(msg)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = two_clusters_xor(n, seed=seed)
    net = verifier.mlp([2, hidden, 1])
    say(f"network {net}, degree L = {verifier.degree(net)}; data: {n} samples (two clusters, XOR labels)")
    res = verifier.train(net, net.init_params(seed=seed + 1), X, y, steps=steps, lr=0.5, progress=False,
                         kkt_every=max(1, steps // 20))
    (out / "history.json").write_text(json.dumps(res.to_dict()) + "\n")
    last = res.history[-1]
    say(f"trained {steps} steps: normalised margin {last['normalized_margin']:.5f}")
    rep = verifier.check_kkt(net, res.params, X, y)
    if rep.verdict == "infeasible":
        from ..errors import VerifierError

        raise VerifierError(f"demo: training for {steps} steps did not separate the data (smallest margin "
                            f"{rep.min_margin:.3g}); use more steps or hidden units")
    say(f"KKT check (float): verdict {rep.verdict}, eps_rel {rep.eps_rel:.3g}, delta_rel {rep.delta_rel:.3g}")
    emb = make_split(net, split)
    erep = verifier.check_embedding(emb, res.params, X, y, checks=("isometry", "function", "gradient", "kkt"))
    say(f"embedding {emb.description}: {'all checks pass' if erep.passed else 'failed: ' + ', '.join(erep.failed)}")
    kkt_path, emb_path = out / "kkt.cert.json", out / "emb.cert.json"
    certify_kkt(net, res.params, X, y, report=rep, out=kkt_path)
    certify_embedding(net, res.params, X, y, embedding=emb, report=rep, out=emb_path)
    r1, r2 = check_certificate(kkt_path), check_certificate(emb_path)
    say(f"certificates re-checked exactly: {kkt_path.name} {'valid' if r1.ok else 'INVALID'} ({r1.seconds:.2f} s), "
        f"{emb_path.name} {'valid' if r2.ok else 'INVALID'} ({r2.seconds:.2f} s)")
    series = trajectory_deviation(emb, net.flatten(net.init_params(seed=seed + 1)), X, y,
                                  steps=min(300, steps), lr=0.05)
    paths = write_report(emb_path, out / "report", history=res, embedding_history=series,
                         title="Neuron split of a trained two-layer ReLU network: certificate report")
    say(f"report: {paths['html']}")
    return {"kkt_certificate": kkt_path, "embedding_certificate": emb_path, "kkt_ok": r1.ok,
            "embedding_ok": r2.ok, "report": paths["html"], "markdown": paths["markdown"]}

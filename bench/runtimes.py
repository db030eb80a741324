"""Benchmark: tekscore's xgboost, lightgbm and pmml runtimes against MLServer 1.7.1's
mlserver-xgboost and mlserver-lightgbm, on the same models, at batch 1 and batch 256.

The models: a binary classifier on generated data (8 features), trained here as an XGBoost
booster (`.json`) and as a LightGBM booster (text file), `--trees` trees each; and that same
LightGBM model written as PMML (a MiningModel summing one TreeModel per tree, then the logistic
link), so the pmml runtime (JPMML) scores exactly the model mlserver-lightgbm scores. Before
timing, the PMML's probabilities are checked against LightGBM's own (and ours against both
libraries'), so every server answers the same numbers.

What is compared (printed with the results): ours on the records endpoint
(`prediction`, `proba_0`, `proba_1` per record) and, for information, on OIP `infer`; MLServer
on OIP `infer` with its default `predict` output (P(class 1)). One server process each
(MLServer `parallel_workers: 0`, debug off, adaptive batching off, its defaults), loopback, free
ports, `--connections` keep-alive connections; the load generator is the one of
`bench/scoring_service.py` (its ceiling is measured there). MLServer and the boosters it needs
live in their own venv `bench/.venv-mlserver-boosters`, created here on first use (pip, from the
package index), with our xgboost and lightgbm versions.

The ratios printed are rows/s of ours over MLServer's on the same model file: xgboost runtime /
mlserver-xgboost, lightgbm runtime / mlserver-lightgbm, pmml runtime / mlserver-lightgbm. Every
request loop is bounded by a request count; the machine's load average is printed per round.

Run: `.venv/bin/python bench/runtimes.py [--rounds 3] [--requests-b1 2000]
[--requests-b256 600] [--connections 4] [--trees 100]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from venvs import ensure_venv

from common.ports import free_port

HERE = Path(__file__).resolve().parent
FEATURES = [f"x{i}" for i in range(8)]


def _load_bench(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


LOAD = _load_bench("scoring_service")  # run_load, Result, stop, wait_ready, load_average


def ensure_mlserver() -> Path:
    """The mlserver executable of the boosters venv, creating the venv first when missing."""
    return ensure_venv("mlserver-boosters") / "mlserver"


def make_data(rows: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    score = x[:, 0] * x[:, 1] + np.sin(x[:, 2]) - 0.5 * x[:, 3] + 0.3 * x[:, 4] ** 2
    return x, (score + rng.normal(scale=0.3, size=rows) > 0.3).astype(int)


def train(folder: Path, trees: int) -> dict[str, Path]:
    """The XGBoost and LightGBM boosters and the LightGBM model as PMML."""
    import lightgbm as lgb
    import xgboost as xgb

    x, y = make_data(5000, seed=1)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "nthread": 1},
        xgb.DMatrix(x, y, feature_names=FEATURES),
        num_boost_round=trees,
    )
    paths = {"xgboost": folder / "model.json", "lightgbm": folder / "model.txt"}
    booster.save_model(str(paths["xgboost"]))
    gbm = lgb.train(
        {"objective": "binary", "num_leaves": 31, "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, y, feature_name=FEATURES),
        num_boost_round=trees,
    )
    gbm.save_model(str(paths["lightgbm"]))
    paths["pmml"] = folder / "model.pmml"
    paths["pmml"].write_text(lightgbm_to_pmml(gbm.dump_model()))
    return paths


def lightgbm_to_pmml(dump: dict[str, Any]) -> str:
    """A LightGBM binary classifier (numeric `<=` splits, no missing values in the data) as
    PMML: the sum of its trees' leaf values, then P(1) = 1 / (1 + exp(-sum))."""
    assert dump["objective"].startswith("binary"), dump["objective"]
    names = dump["feature_names"]

    def node(tree: dict[str, Any], predicate: str) -> str:
        if "leaf_value" in tree:
            return f'<Node score="{float(tree["leaf_value"])!r}">{predicate}</Node>'
        assert tree["decision_type"] == "<=", tree["decision_type"]
        field = names[tree["split_feature"]]
        split = (
            f'<SimplePredicate field="{field}" operator="lessOrEqual" '
            f'value="{float(tree["threshold"])!r}"/>'
        )
        return (
            f"<Node>{predicate}{node(tree['left_child'], split)}"
            f"{node(tree['right_child'], '<True/>')}</Node>"
        )

    fields = "".join(f'<MiningField name="{n}"/>' for n in names)
    segments = "".join(
        f'<Segment id="t{t["tree_index"]}"><True/>'
        f'<TreeModel functionName="regression" splitCharacteristic="binarySplit">'
        f"<MiningSchema>{fields}</MiningSchema>{node(t['tree_structure'], '<True/>')}"
        f"</TreeModel></Segment>"
        for t in dump["tree_info"]
    )
    data = "".join(f'<DataField name="{n}" optype="continuous" dataType="double"/>' for n in names)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
<Header description="LightGBM binary classifier, {len(dump["tree_info"])} trees"/>
<DataDictionary>
<DataField name="y" optype="categorical" dataType="integer">
<Value value="0"/><Value value="1"/>
</DataField>
{data}
</DataDictionary>
<MiningModel functionName="classification">
<MiningSchema><MiningField name="y" usageType="target"/>{fields}</MiningSchema>
<Segmentation multipleModelMethod="modelChain">
<Segment id="sum"><True/>
<MiningModel functionName="regression">
<MiningSchema>{fields}</MiningSchema>
<Output>
<OutputField name="raw" optype="continuous" dataType="double" feature="predictedValue"
 isFinalResult="false"/>
</Output>
<Segmentation multipleModelMethod="sum">{segments}</Segmentation>
</MiningModel>
</Segment>
<Segment id="link"><True/>
<RegressionModel functionName="classification" normalizationMethod="logit">
<MiningSchema><MiningField name="y" usageType="target"/><MiningField name="raw"/></MiningSchema>
<Output>
<OutputField name="proba_0" optype="continuous" dataType="double" feature="probability" value="0"/>
<OutputField name="proba_1" optype="continuous" dataType="double" feature="probability" value="1"/>
</Output>
<RegressionTable intercept="0" targetCategory="1">
<NumericPredictor name="raw" coefficient="1"/>
</RegressionTable>
<RegressionTable intercept="0" targetCategory="0"/>
</RegressionModel>
</Segment>
</Segmentation>
</MiningModel>
</PMML>
"""


def start_ours(folder: Path, paths: dict[str, Path]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    inputs = [{"name": f, "type": "double"} for f in FEATURES]
    config = {
        "name": "runtimes",
        "models": [
            {"name": kind, "type": kind, "uri": path.as_uri(), "schema": {"input": inputs}}
            for kind, path in paths.items()
        ],
    }
    (folder / "ours.json").write_text(json.dumps(config))
    exe = Path(sys.executable).parent / "tekscore"
    proc = subprocess.Popen(
        [str(exe), "serve-model", "--config", str(folder / "ours.json"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "ours.log").open("wb"),
        env={**os.environ, "TEKSCORE_LOG_LEVEL": "warning"},
    )
    url = f"http://127.0.0.1:{port}"
    LOAD.wait_ready(url, proc, timeout=300.0)
    return proc, url


def start_mlserver(
    folder: Path, paths: dict[str, Path], exe: Path
) -> tuple[subprocess.Popen[bytes], str]:
    repo = folder / "mlserver"
    for kind, implementation in (
        ("xgboost", "mlserver_xgboost.XGBoostModel"),
        ("lightgbm", "mlserver_lightgbm.LightGBMModel"),
    ):
        (repo / kind).mkdir(parents=True)
        target = repo / kind / paths[kind].name
        target.write_bytes(paths[kind].read_bytes())
        settings = {
            "name": kind,
            "implementation": implementation,
            "parameters": {"uri": f"./{target.name}"},
        }
        (repo / kind / "model-settings.json").write_text(json.dumps(settings))
    result: tuple[subprocess.Popen[bytes], str] = LOAD.serve_repository(repo, exe, 300.0)
    return result


def infer_body(x: np.ndarray[Any, Any]) -> bytes:
    tensor = {"name": "input-0", "shape": list(x.shape), "datatype": "FP64", "data": x.tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def records_body(x: np.ndarray[Any, Any]) -> bytes:
    return json.dumps([dict(zip(FEATURES, row, strict=True)) for row in x.tolist()]).encode()


def check_answers(ours: str, mlserver: str, paths: dict[str, Path]) -> float:
    """Every server answers the libraries' own probabilities on the same rows; the largest
    PMML-vs-LightGBM difference is returned (a float sum in another order)."""
    import lightgbm as lgb
    import xgboost as xgb

    x, _ = make_data(256, seed=9)
    own = {
        "xgboost": xgb.Booster(model_file=str(paths["xgboost"])).predict(
            xgb.DMatrix(x, feature_names=FEATURES)
        ),
        "lightgbm": lgb.Booster(model_file=str(paths["lightgbm"])).predict(x),
    }
    headers = {"content-type": "application/json"}
    worst = 0.0
    for kind in ("xgboost", "lightgbm", "pmml"):
        answer = httpx.post(
            f"{ours}/v2/models/{kind}/records",
            content=records_body(x),
            headers=headers,
            timeout=300,
        )
        served = np.array([r["proba_1"] for r in answer.json()])
        expected = own["xgboost" if kind == "xgboost" else "lightgbm"]
        if kind == "pmml":
            worst = float(np.abs(served - expected).max())
            assert worst < 1e-9, f"the PMML differs from LightGBM by {worst}"
        else:
            assert np.array_equal(served, expected.astype(np.float64)), kind
    for kind in ("xgboost", "lightgbm"):
        answer = httpx.post(
            f"{mlserver}/v2/models/{kind}/infer",
            content=infer_body(x),
            headers=headers,
            timeout=300,
        ).json()
        served = np.array(answer["outputs"][0]["data"], dtype=np.float64).reshape(-1)
        assert np.allclose(served, own[kind], rtol=0, atol=1e-6), kind
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests-b1", type=int, default=2000)
    parser.add_argument("--requests-b256", type=int, default=600)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--trees", type=int, default=100)
    args = parser.parse_args()

    exe = ensure_mlserver()
    print(f"start: {LOAD.load_average()}, {os.cpu_count()} cpus", flush=True)
    results: dict[tuple[str, int], list[Any]] = {}
    loads: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tekscore-bench-runtimes-") as tmp:
        folder = Path(tmp)
        paths = train(folder, args.trees)
        procs = []
        try:
            ours, ours_url = start_ours(folder, paths)
            procs.append(ours)
            mls, mls_url = start_mlserver(folder, paths, exe)
            procs.append(mls)
            worst = check_answers(ours_url, mls_url, paths)
            print(
                f"answers checked: ours = xgboost/lightgbm exactly, the PMML = LightGBM within "
                f"{worst:.1e}, MLServer = the libraries",
                flush=True,
            )
            targets = [
                ("mlserver xgboost", mls_url, "xgboost", "infer"),
                ("ours xgboost", ours_url, "xgboost", "records"),
                ("ours xgboost infer", ours_url, "xgboost", "infer"),
                ("mlserver lightgbm", mls_url, "lightgbm", "infer"),
                ("ours lightgbm", ours_url, "lightgbm", "records"),
                ("ours lightgbm infer", ours_url, "lightgbm", "infer"),
                ("ours pmml", ours_url, "pmml", "records"),
                ("ours pmml infer", ours_url, "pmml", "infer"),
            ]
            for round_no in range(1, args.rounds + 1):
                for batch, count in ((1, args.requests_b1), (256, args.requests_b256)):
                    x, _ = make_data(batch, seed=round_no)
                    bodies = {"records": records_body(x), "infer": infer_body(x)}
                    for name, url, model, endpoint in targets:
                        n = count // 3 if model == "pmml" and batch > 1 else count
                        res = LOAD.run_load(
                            url,
                            f"/v2/models/{model}/{endpoint}",
                            bodies[endpoint],
                            requests=n,
                            connections=args.connections,
                            rows=batch,
                            check=b"outputs" if endpoint == "infer" else b"proba_1",
                        )
                        results.setdefault((name, batch), []).append(res)
                loads.append(LOAD.load_average())
                print(f"round {round_no} done: {loads[-1]}", flush=True)
        finally:
            for proc in procs:
                LOAD.stop(proc)

    print(
        f"\nruntimes vs MLServer 1.7.1 (mlserver-xgboost, mlserver-lightgbm), binary classifier, "
        f"{len(FEATURES)} features, {args.trees} trees, {args.connections} connections, "
        f"{os.cpu_count()} cpus, {args.rounds} rounds"
    )
    print(
        "ours/records: prediction + proba_0 + proba_1 per record; ours/infer: the same as "
        "tensors; mlserver/infer: predict (P(1)) only; the pmml model is the LightGBM model"
    )
    print(
        f"{'server/model':<22} {'batch':>5} {'round':>5} {'req/s':>9} {'rows/s':>11} "
        f"{'p50 ms':>8} {'p99 ms':>8}"
    )
    for batch in (1, 256):
        for name, *_ in targets:
            for round_no, res in enumerate(results[(name, batch)], 1):
                print(
                    f"{name:<22} {batch:>5} {round_no:>5} {res.rps:>9.0f} "
                    f"{res.rows_per_s:>11.0f} {res.pct(0.5):>8.2f} {res.pct(0.99):>8.2f}"
                )
    print()
    pairs = [
        ("ours xgboost", "mlserver xgboost"),
        ("ours xgboost infer", "mlserver xgboost"),
        ("ours lightgbm", "mlserver lightgbm"),
        ("ours lightgbm infer", "mlserver lightgbm"),
        ("ours pmml", "mlserver lightgbm"),
        ("ours pmml infer", "mlserver lightgbm"),
    ]
    for batch in (1, 256):
        for ours_name, base_name in pairs:
            ratios = [
                o.rows_per_s / b.rows_per_s
                for o, b in zip(
                    results[(ours_name, batch)], results[(base_name, batch)], strict=True
                )
            ]
            print(
                f"batch {batch:>3}: {ours_name} / {base_name} = median "
                f"{statistics.median(ratios):.2f}x rows/s [{', '.join(f'{r:.2f}' for r in ratios)}]"
            )
    print("load per round: " + "; ".join(loads))


if __name__ == "__main__":
    main()

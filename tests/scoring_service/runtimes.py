"""Models for the runtime tests, made here, and the OIP client the tests call them with.

XGBoost and LightGBM boosters are trained on small generated data in the test process. PMML
documents are written by hand (sklearn2pmml does not convert scikit-learn 1.9 models); one is
the iris logistic regression with scikit-learn's fitted coefficients. The PMML reference
answers and the TensorFlow SavedModel come from child processes (`REFERENCE_SCRIPT`), so the
test process starts no JVM and imports no TensorFlow: each child evaluates with the runtime's
own library, in-process, what the server is then asked. The client is tritonclient's HTTP
client with JSON tensors (`binary_data=False`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as triton
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
FEATURES = ["f0", "f1", "f2", "f3", "f4"]


def booster_data(rows: int = 400, seed: int = 7) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
    """Features `[rows, 5]` and labels for a binary, a 3-class and a regression model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    score = x[:, 0] + 0.5 * x[:, 1] - x[:, 2] * x[:, 3]
    labels = {
        "binary": (score > 0).astype(int),
        "multiclass": np.digitize(score, [-0.5, 0.5]),
        "regression": score + 0.1 * x[:, 4],
    }
    return x, labels


def train_xgboost(folder: Path, kind: str, suffix: str) -> Path:
    """An XGBoost booster saved in its native format (`.json` or `.ubj`)."""
    import xgboost as xgb

    x, labels = booster_data()
    objectives: dict[str, dict[str, Any]] = {
        "binary": {"objective": "binary:logistic"},
        "multiclass": {"objective": "multi:softprob", "num_class": 3},
        "regression": {"objective": "reg:squarederror"},
    }
    params = objectives[kind]
    data = xgb.DMatrix(x, labels[kind], feature_names=FEATURES)
    booster = xgb.train({**params, "max_depth": 3, "nthread": 1}, data, num_boost_round=12)
    path = folder / f"xgb-{kind}{suffix}"
    booster.save_model(str(path))
    return path


def train_lightgbm(folder: Path, kind: str) -> Path:
    """A LightGBM booster saved as its text model file."""
    import lightgbm as lgb

    x, labels = booster_data()
    objectives: dict[str, dict[str, Any]] = {
        "binary": {"objective": "binary"},
        "multiclass": {"objective": "multiclass", "num_class": 3},
        "regression": {"objective": "regression"},
    }
    params = objectives[kind]
    data = lgb.Dataset(x, labels[kind], feature_name=FEATURES)
    booster = lgb.train(
        {**params, "num_leaves": 7, "verbose": -1, "num_threads": 1}, data, num_boost_round=12
    )
    path = folder / f"lgb-{kind}.txt"
    booster.save_model(str(path))
    return path


def iris_pmml(folder: Path) -> tuple[Path, LogisticRegression]:
    """The iris multinomial logistic regression as a PMML RegressionModel (softmax), with a
    probability output field per class; and the scikit-learn model it was written from."""
    data = load_iris()
    species = np.array(data.target_names)[data.target]
    model = LogisticRegression(max_iter=1000).fit(data.data, species)
    fields = "".join(
        f'<DataField name="{n}" optype="continuous" dataType="double"/>' for n in IRIS_FEATURES
    )
    values = "".join(f'<Value value="{c}"/>' for c in model.classes_)
    mining = "".join(f'<MiningField name="{n}"/>' for n in IRIS_FEATURES)
    outputs = "".join(
        f'<OutputField name="proba_{c}" optype="continuous" dataType="double" '
        f'feature="probability" value="{c}"/>'
        for c in model.classes_
    )
    tables = ""
    for k, label in enumerate(model.classes_):
        predictors = "".join(
            f'<NumericPredictor name="{n}" coefficient="{float(model.coef_[k, j])!r}"/>'
            for j, n in enumerate(IRIS_FEATURES)
        )
        tables += (
            f'<RegressionTable intercept="{float(model.intercept_[k])!r}" '
            f'targetCategory="{label}">{predictors}</RegressionTable>'
        )
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header description="iris logistic regression (scikit-learn coefficients)"/>
  <DataDictionary>
    <DataField name="species" optype="categorical" dataType="string">{values}</DataField>
    {fields}
  </DataDictionary>
  <RegressionModel functionName="classification" normalizationMethod="softmax">
    <MiningSchema><MiningField name="species" usageType="target"/>{mining}</MiningSchema>
    <Output>{outputs}</Output>
    {tables}
  </RegressionModel>
</PMML>
"""
    path = folder / "iris.pmml"
    path.write_text(text)
    return path, model


RISK_PMML = """<?xml version="1.0" encoding="UTF-8"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header description="risk = 1.5 + 2 * size + colour term; a missing size counts as 10"/>
  <DataDictionary>
    <DataField name="colour" optype="categorical" dataType="string">
      <Value value="red"/><Value value="blue"/>
    </DataField>
    <DataField name="size" optype="continuous" dataType="integer"/>
    <DataField name="risk" optype="continuous" dataType="double"/>
  </DataDictionary>
  <RegressionModel functionName="regression">
    <MiningSchema>
      <MiningField name="risk" usageType="target"/>
      <MiningField name="colour"/>
      <MiningField name="size" missingValueReplacement="10"/>
    </MiningSchema>
    <Output>
      <OutputField name="predicted" optype="continuous" dataType="double" feature="predictedValue"/>
      <OutputField name="high" optype="categorical" dataType="boolean" feature="transformedValue">
        <Apply function="greaterThan"><FieldRef field="predicted"/><Constant>20</Constant></Apply>
      </OutputField>
    </Output>
    <RegressionTable intercept="1.5">
      <NumericPredictor name="size" coefficient="2"/>
      <CategoricalPredictor name="colour" value="red" coefficient="3"/>
      <CategoricalPredictor name="colour" value="blue" coefficient="-1"/>
    </RegressionTable>
  </RegressionModel>
</PMML>
"""
"""A regression over a categorical string and an integer input (with a missing value
replacement), and a boolean output field computed from the target."""


REFERENCE_SCRIPT = r"""
import json, os, sys
job = json.load(open(sys.argv[1]))
if job["kind"] == "pmml":
    import pandas
    from jpmml_evaluator import make_evaluator
    evaluator = make_evaluator(job["model"]).verify()
    frame = pandas.DataFrame(job["records"], columns=job["columns"])
    answer = []  # the service's records answer: a row JPMML refused is an error item
    for row in evaluator.evaluateAll(frame).to_dict(orient="records"):
        error = row.pop("errors", None)
        answer.append({"$error": f"scoring failed: {error}"} if isinstance(error, str) else row)
elif job["kind"] == "tensorflow":
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable([[0.5, -1.0], [2.0, 0.25], [1.0, 1.5]], dtype=tf.float32)
            self.b = tf.Variable([0.1, -0.2], dtype=tf.float32)

        @tf.function(input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="x"),
            tf.TensorSpec([None], tf.string, name="tag"),
        ])
        def serve(self, x, tag):
            logits = tf.matmul(x, self.w) + self.b
            return {
                "scores": tf.nn.softmax(logits),
                "best": tf.argmax(logits, axis=1),
                "label": tf.strings.join([tag, tf.strings.as_string(tf.argmax(logits, axis=1))], "-"),
            }

    scorer = Scorer()
    tf.saved_model.save(scorer, job["model"], signatures={"serving_default": scorer.serve})
    loaded = tf.saved_model.load(job["model"]).signatures["serving_default"]
    out = loaded(x=tf.constant(job["x"], tf.float32), tag=tf.constant(job["tag"]))
    answer = {k: (v.numpy().astype(object) if v.dtype == tf.string else v.numpy()).tolist()
              for k, v in out.items()}
    answer["label"] = [b.decode() for b in answer["label"]]
json.dump(answer, open(sys.argv[2], "w"), default=lambda value: value.item())
"""


def reference(folder: Path, job: dict[str, Any]) -> Any:
    """Run the reference child process on `job` and return its JSON answer."""
    request, answer = folder / f"{job['kind']}-job.json", folder / f"{job['kind']}-answer.json"
    request.write_text(json.dumps(job))
    done = subprocess.run(
        [sys.executable, "-c", REFERENCE_SCRIPT, str(request), str(answer)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(answer.read_text())


def triton_client(url: str) -> triton.InferenceServerClient:
    """tritonclient's HTTP client for a server at `http://host:port`."""
    return triton.InferenceServerClient(url=url.removeprefix("http://"), network_timeout=120.0)


def triton_infer(
    client: triton.InferenceServerClient,
    model: str,
    inputs: dict[str, tuple[np.ndarray[Any, Any], str]],
    outputs: list[str],
) -> dict[str, np.ndarray[Any, Any]]:
    """OIP infer through tritonclient: `inputs` name -> (array, datatype), JSON tensors."""
    tensors = []
    for name, (array, datatype) in inputs.items():
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=False)
        tensors.append(tensor)
    wanted = [triton.InferRequestedOutput(name, binary_data=False) for name in outputs]
    result = client.infer(model, tensors, outputs=wanted)
    return {name: result.as_numpy(name) for name in outputs}

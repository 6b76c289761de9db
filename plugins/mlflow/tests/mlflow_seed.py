"""Seed and inspect a real MLflow server with mlflow's OWN client.

Runs with the python of the test venv that has mlflow installed (never the console's venv):

    python mlflow_seed.py seed URL          -> JSON: what was created
    python mlflow_seed.py dump URL MODEL    -> JSON: aliases and version tags as mlflow sees them
    python mlflow_seed.py model URL NAME COUNT ALIAS VERSION  -> a model with COUNT versions
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request


def wait_healthy(url: str, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"mlflow server at {url} not healthy after {seconds:.0f}s")
        time.sleep(0.2)


def seed(url: str) -> dict[str, object]:
    from mlflow import MlflowClient
    from mlflow.entities import Dataset, DatasetInput, InputTag

    wait_healthy(url)
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    exp = client.create_experiment("cd4ml-seed")
    users = ["alice", "bob"]
    out: dict[str, object] = {"experiment_id": exp, "models": {}}

    def make_version(model: str, i: int) -> dict[str, object]:
        commit = f"{(i + 1) * 0x1111:040x}"
        user = users[i % 2]
        run = client.create_run(
            exp,
            tags={"mlflow.source.git.commit": commit, "mlflow.user": user},
            run_name=f"{model}-train-{i + 1}",
        )
        rid = run.info.run_id
        client.log_metric(rid, "auc", 0.80 + i / 100, timestamp=1_700_000_000_000 + i, step=0)
        client.log_metric(rid, "latency_ms", 20.0 - i, timestamp=1_700_000_000_000 + i, step=0)
        client.log_param(rid, "learning_rate", str(0.1 * (i + 1)))
        client.log_param(rid, "n_estimators", str(100 + 10 * i))
        client.log_param(rid, "model_type", "gbm")
        dataset = Dataset(
            name="train",
            digest=f"d{i:07d}",
            source_type="local",
            source=json.dumps({"uri": f"data/train-{i}.csv"}),
        )
        client.log_inputs(
            rid, datasets=[DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])]
        )
        client.set_terminated(rid)
        mv = client.create_model_version(
            model, source=f"{run.info.artifact_uri}/model", run_id=rid, tags={"seed": str(i)}
        )
        return {"version": mv.version, "run_id": rid, "commit": commit, "user": user}

    plan = {
        # model: (number of versions, {alias: version})
        "churn": (5, {"champion": "2", "staging": "3", "canary": "5"}),
        "fraud": (1, {}),
        "promo": (3, {"champion": "1", "staging": "2"}),
        "race": (3, {"champion": "1"}),
        "stale": (2, {"champion": "2"}),
    }
    for model, (count, aliases) in plan.items():
        client.create_registered_model(model, tags={"team": "risk"}, description=f"{model} model")
        versions = [make_version(model, i) for i in range(count)]
        for alias, version in aliases.items():
            client.set_registered_model_alias(model, alias, version)
        out["models"][model] = {"versions": versions, "aliases": aliases}  # type: ignore[index]
    return out


def dump(url: str, model: str) -> dict[str, object]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    rm = client.get_registered_model(model)
    versions = client.search_model_versions(f"name='{model}'")
    return {
        "aliases": dict(rm.aliases),
        "versions": {v.version: dict(v.tags) for v in versions},
    }


def make_model(url: str, name: str, count: int, alias: str, version: str) -> None:
    """A registered model with ``count`` versions (users alice/bob) and one alias set."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    exp = client.create_experiment(f"cd4ml-{name}")
    client.create_registered_model(name)
    for i in range(count):
        run = client.create_run(exp, tags={"mlflow.user": ("alice", "bob")[i % 2]})
        client.set_terminated(run.info.run_id)
        client.create_model_version(
            name, source=f"{run.info.artifact_uri}/m", run_id=run.info.run_id
        )
    client.set_registered_model_alias(name, alias, version)


def main() -> None:
    command, url, *rest = sys.argv[1:]
    if command == "seed":
        print(json.dumps(seed(url)))
    elif command == "model":
        make_model(url, rest[0], int(rest[1]), rest[2], rest[3])
    elif command == "dump":
        print(json.dumps(dump(url, rest[0])))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()

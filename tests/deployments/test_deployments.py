"""prefect.yaml and the schedules `evalkeeper serve` uses say the same thing, and every
entrypoint resolves to a real flow."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from deployments.schedules import NIGHTLY, TIMEZONE

ROOT = Path(__file__).resolve().parents[2]


def test_prefect_yaml_matches_the_declared_schedules() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    for name, declared in NIGHTLY.items():
        d = deployments[name]
        assert d["schedules"] == [{"cron": declared["cron"], "timezone": TIMEZONE}]
        assert d["parameters"]["suite"] == declared["parameters"]["suite"]
    assert deployments["nightly-full"]["schedules"][0]["cron"] == "0 2 * * *"
    assert deployments["nightly-smoke"]["schedules"][0]["cron"] == "0 */4 * * *"


def test_entrypoints_are_flows() -> None:
    from prefect import Flow

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for d in spec["deployments"]:
        path, _, attr = d["entrypoint"].partition(":")
        assert (ROOT / path).exists()
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, attr), Flow)

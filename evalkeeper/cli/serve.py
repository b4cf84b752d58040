"""`evalkeeper serve`: the scheduled deployments served from this process, beside the ones
`prefect deploy` puts on a work pool and never on top of them.

A Prefect deployment belongs to whoever registered it last. Served under the names of
`prefect.yaml`, `serve` would strip the deployed ones of their pull steps (their worker's runs
then fail with "Downloading flow code from storage at None"), and a later `prefect deploy`
would hand the served ones to the work pool. So `serve` registers `<name><suffix>`
(`nightly-full-serve`), and refuses a name that a work pool already owns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalkeeper import orchestration_env
from evalkeeper.cli.app import app, err_console, fail
from evalkeeper.cli.demo import DEMO_DATASET, DEMO_TARGETS

if TYPE_CHECKING:
    from prefect.client.schemas.responses import DeploymentResponse


def _deployed(flow_name: str, names: list[str]) -> dict[str, DeploymentResponse]:
    """The deployments among `flow_name/name` that a work pool owns, by name."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    found: dict[str, DeploymentResponse] = {}
    try:
        with get_client(sync_client=True) as client:
            for name in dict.fromkeys(names):
                try:
                    d = client.read_deployment_by_name(f"{flow_name}/{name}")
                except ObjectNotFound:
                    continue
                if d.work_pool_name:
                    found[name] = d
    except httpx.TransportError as exc:
        fail(
            f"Prefect API at {PREFECT_API_URL.value() or '(ephemeral)'}: cannot connect "
            f"({exc}); start it with `prefect server start` or set PREFECT_API_URL"
        )
    return found


def _refusal(flow_name: str, d: DeploymentResponse, default_suffix: str) -> str:
    full = f"{flow_name}/{d.name}"
    return (
        f"deployment {full} belongs to work pool {d.work_pool_name} (`prefect deploy`); "
        "serving it here too would replace its pull steps and break its worker's runs. "
        f"Serve it under its own name (`evalkeeper serve` registers {full}{default_suffix}; "
        "--name-suffix picks another suffix), or delete the deployed one first: "
        f"`prefect deployment delete {full}`"
    )


def _warn_double_schedule(flow_name: str, d: DeploymentResponse, served: str) -> None:
    active = [s for s in d.schedules if s.active]
    if d.paused or not active:
        return
    pause = "; ".join(
        f"prefect deployment schedule pause {flow_name}/{d.name} {s.id}" for s in active
    )
    err_console.print(
        f"[yellow]note:[/] {flow_name}/{d.name} (work pool {d.work_pool_name}) runs on the "
        f"same schedule as {flow_name}/{served}: both fire. To keep only the served one: {pause}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def serve(
    dataset: Annotated[str, typer.Option(help="Dataset the nightly runs use.")] = DEMO_DATASET,
    target: Annotated[str, typer.Option(help="Target the nightly runs use.")] = DEMO_TARGETS[0],
    name_suffix: Annotated[
        str | None,
        typer.Option(
            help="Appended to each deployment name (default -serve: nightly-full-serve), so "
            "that the deployments of `prefect deploy` stay untouched."
        ),
    ] = None,
) -> None:
    """Serve the scheduled deployments (nightly-full-serve, nightly-smoke-serve) from this
    process, without a work pool."""
    orchestration_env.configure()
    from prefect import serve as prefect_serve
    from prefect.schedules import Cron

    from deployments.schedules import NIGHTLY, SERVE_SUFFIX, TIMEZONE
    from flows.nightly import nightly

    suffix = SERVE_SUFFIX if name_suffix is None else name_suffix
    names = {base: f"{base}{suffix}" for base in NIGHTLY}
    deployed = _deployed(nightly.name, [*names.values(), *names])
    taken = [deployed[name] for name in names.values() if name in deployed]
    if taken:
        fail("\n".join(_refusal(nightly.name, d, SERVE_SUFFIX) for d in taken))
    for base, name in names.items():
        if base in deployed:
            _warn_double_schedule(nightly.name, deployed[base], name)

    deployments: list[Any] = [
        nightly.to_deployment(
            name=names[base],
            schedule=Cron(spec["cron"], timezone=TIMEZONE),
            description=f"{spec['description']} Served by `evalkeeper serve`.",
            parameters={**spec["parameters"], "dataset": dataset, "target": target},
        )
        for base, spec in NIGHTLY.items()
    ]
    prefect_serve(*deployments)

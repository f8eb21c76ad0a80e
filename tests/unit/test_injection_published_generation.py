"""A sidecar's container and the ConfigMap it mounts come from one spec: between an edit of a sidecar
pipeline and the reconcile that publishes it (or while that reconcile keeps failing), the webhook keeps
injecting the previous spec's agent with the previous spec's ConfigMap, never the new container with the old
config; and the stale-sidecar rollout waits for the new ConfigMap to exist."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest
import yaml
from otlp_agent.api import loader
from otlp_operator.edge import injection_handlers, injection_state, settings
from otlp_operator.injection import catalog, markers, resolve
from otlp_operator.manifests import configmap, container
from otlp_operator.reconcile import reconciler

from tests.support.injection_inputs import IMAGE, NEW, body, deployment_pod, pipeline

GENERATION = 3


def published(spec_fields: dict[str, Any], *, generation: int, published_from: int) -> dict[str, Any]:
    """The pipeline `agent` with `spec_fields` at `generation`, whose status is what reconcile wrote for
    the spec of generation `published_from` (the default spec: the one before the edit)."""
    found = body("agent", **spec_fields)
    found["metadata"]["generation"] = generation
    name = configmap.name(pipeline("agent"), IMAGE)
    found["status"] = {"configRollout": {"configMap": name, "generation": published_from}}
    return found


def config_maps(*specs: dict[str, Any]) -> dict[str, loader.OTLPPipeline]:
    """What reconcile publishes for each spec: ConfigMap name -> the config the agent reads from it."""
    found = {}
    for fields in specs:
        built = configmap.build(pipeline("agent", **fields), IMAGE)
        (text,) = built["data"].values()
        found[built["metadata"]["name"]] = loader.load_document(yaml.safe_load(text))
    return found


def state_with(found: catalog.Catalog) -> injection_state.Injection:
    config = settings.OperatorConfig(agent_image=IMAGE, injection=True)
    return injection_state.Injection(config, client=None, version=NEW, catalog=found)  # type: ignore[arg-type]


def inject(found: catalog.Catalog) -> tuple[dict[str, Any] | None, list[str]]:
    warnings: list[str] = []
    pod = deployment_pod(**{markers.INJECT_ANNOTATION: "agent"})
    return injection_handlers.admit(state_with(found), pod, warnings, dryrun=True), warnings


def agent_and_config(pod: dict[str, Any]) -> tuple[dict[str, Any], str]:
    (agent,) = [c for c in pod["spec"]["initContainers"] if c["name"] == "otlp-agent"]
    (mounted,) = [v["configMap"]["name"] for v in pod["spec"]["volumes"] if "configMap" in v]
    return agent, mounted


def assert_consistent(agent: dict[str, Any], config: loader.OTLPPipeline) -> None:
    """The container's ports are the ones the agent opens from that config, and its probes reach the
    telemetry port it listens on."""
    ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
    assert ports == {p["name"]: p["containerPort"] for p in container.ports(config)}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ports[agent[probe]["httpGet"]["port"]] == config.spec.telemetry.port, probe


EDITED = {"telemetry": {"port": 9999}}


def test_an_edited_spec_not_yet_published_keeps_injecting_the_previous_agent_with_its_config() -> None:
    found = catalog.Catalog()
    found.apply_pipeline("ADDED", published({}, generation=GENERATION, published_from=GENERATION))
    found.apply_pipeline("MODIFIED", published(EDITED, generation=GENERATION + 1, published_from=GENERATION))
    pod, warnings = inject(found)
    assert pod is not None and warnings == []
    agent, mounted = agent_and_config(pod)
    maps = config_maps({}, EDITED)
    assert mounted in maps
    assert_consistent(agent, maps[mounted])
    assert maps[mounted].spec.telemetry.port == 8888  # the previous spec's, not 9999 with the old config


def test_once_reconcile_publishes_the_edit_pods_get_the_new_agent_with_its_new_config() -> None:
    found = catalog.Catalog()
    found.apply_pipeline("ADDED", published({}, generation=GENERATION, published_from=GENERATION))
    edited = published(EDITED, generation=GENERATION + 1, published_from=GENERATION)
    found.apply_pipeline("MODIFIED", edited)
    edited["status"]["configRollout"] = {
        "configMap": configmap.name(pipeline("agent", **EDITED), IMAGE),
        "generation": GENERATION + 1,
    }
    found.apply_pipeline("MODIFIED", edited)
    pod, _ = inject(found)
    assert pod is not None
    agent, mounted = agent_and_config(pod)
    assert_consistent(agent, config_maps(EDITED)[mounted])
    assert config_maps(EDITED)[mounted].spec.telemetry.port == 9999


def test_a_replica_that_never_saw_the_published_spec_injects_nothing_and_says_which_generation() -> None:
    found = catalog.Catalog()  # e.g. started during a failover, after the edit
    found.replace_pipelines([published(EDITED, generation=GENERATION + 1, published_from=GENERATION)])
    pod, warnings = inject(found)
    assert pod is None
    (warning,) = warnings
    assert "(NotPublished)" in warning and f"generation {GENERATION + 1} is not published yet" in warning


def test_a_relist_keeps_the_previous_target_while_the_edit_is_not_published() -> None:
    found = catalog.Catalog()
    found.replace_pipelines([published({}, generation=GENERATION, published_from=GENERATION)])
    found.replace_pipelines([published(EDITED, generation=GENERATION + 1, published_from=GENERATION)])
    pod, _ = inject(found)
    assert pod is not None
    agent, mounted = agent_and_config(pod)
    assert_consistent(agent, config_maps({})[mounted])


def test_a_recreated_pipeline_of_the_same_name_never_gets_its_predecessors_target() -> None:
    found = catalog.Catalog()
    found.apply_pipeline("ADDED", published({}, generation=GENERATION, published_from=GENERATION))
    successor = published(EDITED, generation=2, published_from=1)
    successor["metadata"]["uid"] = "another-uid"
    found.apply_pipeline("MODIFIED", successor)
    pod, warnings = inject(found)
    assert pod is None and "(NotPublished)" in warnings[0]


def test_a_status_without_a_generation_is_trusted_as_an_earlier_operator_wrote_it() -> None:
    legacy = published({}, generation=GENERATION, published_from=GENERATION)
    del legacy["status"]["configRollout"]["generation"]
    target = resolve.target_of(legacy)
    assert target.config_map == configmap.name(pipeline("agent"), IMAGE) and not target.behind


def rollout_handler() -> Any:
    config = settings.OperatorConfig(agent_image=IMAGE, injection=True)
    registry = kopf.OperatorRegistry()
    injection_handlers.register(registry, config)
    (handler,) = {h.fn for h in registry._changing.get_all_handlers() if h.id == "rollout-stale-sidecars"}
    return handler


async def test_the_rollout_waits_while_the_published_config_map_is_of_an_earlier_spec() -> None:
    rolling = {**EDITED, "injection": {"rolloutOnChange": True}}
    edited = published(rolling, generation=GENERATION + 1, published_from=GENERATION)
    found = catalog.Catalog()
    memo = kopf.Memo(
        {
            injection_state.MEMO_KEY: state_with(found),  # its client is None: any API call would fail
            injection_handlers.RECONCILE_CONTEXT: reconciler.Context(client=None, agent_image=IMAGE),  # type: ignore[arg-type]
        }
    )
    with pytest.raises(kopf.TemporaryError, match=f"generation {GENERATION + 1}"):
        await rollout_handler()(body=kopf.Body(edited), memo=memo)


@pytest.mark.parametrize(
    ("published_from", "expected"),
    [(GENERATION, "agent-config-x"), (GENERATION - 1, None), (None, None)],
)
def test_the_rollout_acts_only_for_a_config_map_published_from_the_current_spec(
    published_from: int | None, expected: str | None
) -> None:
    found = body("agent")
    found["metadata"]["generation"] = GENERATION
    found["status"] = {"configRollout": {"configMap": "agent-config-x"}}
    if published_from is not None:
        found["status"]["configRollout"]["generation"] = published_from
    assert injection_handlers._published_for(copy.deepcopy(found)) == expected

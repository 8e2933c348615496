"""Prefect deployment triggers that chain the served deployments (Prefect's own automations do the work).

`train_on_preprocess(preset)`: when a flow run of the deployment `preprocess/local` completes, the server
runs `train/local` on the same store (the preprocess run's `store` parameter) with the training `preset`
and `reuse`, so a preprocess run that changed nothing reuses the model trained on that content. Only runs
of the deployment count: `panst3r preprocess` from a shell and the `pipeline` flow's own preprocess subflow
have no deployment, and so start no extra training.
"""

from __future__ import annotations

from prefect.events import DeploymentEventTrigger

PREPROCESS_FLOW = "preprocess"
PREPROCESS_DEPLOYMENT = "local"
TRIGGER_NAME = "train-on-preprocess"


def train_on_preprocess(preset: str) -> DeploymentEventTrigger:
    """The trigger to attach to the train deployment; `preset` is a conf/train name or a .yaml path."""
    return DeploymentEventTrigger(
        name=TRIGGER_NAME,
        description=f"train ({preset}) on the store of every completed {PREPROCESS_FLOW}/{PREPROCESS_DEPLOYMENT} run",
        expect={"prefect.flow-run.Completed"},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related=[
            {"prefect.resource.role": "flow", "prefect.resource.name": PREPROCESS_FLOW},
            {"prefect.resource.role": "deployment", "prefect.resource.name": PREPROCESS_DEPLOYMENT},
        ],
        # rendered by the server from the flow run that completed
        parameters={"store": "{{ flow_run.parameters.store }}", "config": preset, "reuse": True},
    )

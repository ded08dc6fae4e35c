"""Deal pipelines: the seeded ``default`` pipeline, its read endpoints' bodies, and the
option check applied to a deal's ``pipeline``/``dealstage`` values.

Notes §2.2: ``pipeline`` is ``"default"`` for the default pipeline and ``dealstage``
holds the internal stage id (e.g. ``closedwon``). The stage ids below are those of
HubSpot's standard sales pipeline (the brief's list); labels, order and
probabilities are the ones HubSpot shows for it. ``metadata`` values are strings,
as in the SDK's ``PipelineStage.metadata: dict[str, str]`` (hubspot-api-client 12.0.0).
Only deals have pipelines here; other object types answer an empty list.
"""

from __future__ import annotations

from .errors import not_found

# (stage id, label, probability, isClosed), in display order.
DEFAULT_STAGES = (
    ("appointmentscheduled", "Appointment Scheduled", "0.2", "false"),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", "false"),
    ("presentationscheduled", "Presentation Scheduled", "0.6", "false"),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", "false"),
    ("contractsent", "Contract Sent", "0.9", "false"),
    ("closedwon", "Closed Won", "1.0", "true"),
    ("closedlost", "Closed Lost", "0.0", "true"),
)
DEFAULT_PIPELINE = "default"


class Pipelines:
    """The deal pipelines of one account (only the seeded default one; no writes)."""

    def __init__(self, created_at: str):
        stages = [{"label": label, "displayOrder": order, "metadata": {"isClosed": closed, "probability": prob},
                   "id": stage_id, "createdAt": created_at, "updatedAt": created_at, "archived": False,
                   "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
                  for order, (stage_id, label, prob, closed) in enumerate(DEFAULT_STAGES)]
        self.deals: dict[str, dict] = {DEFAULT_PIPELINE: {
            "label": "Sales Pipeline", "displayOrder": 0, "id": DEFAULT_PIPELINE, "stages": stages,
            "createdAt": created_at, "updatedAt": created_at, "archived": False}}

    # --- read endpoints: GET /crm/v3/pipelines/{objectType}[/{pipelineId}[/stages]] --------
    def listing(self, object_type: str) -> dict:
        """``CollectionResponsePipelineNoPaging``: ``{results: [Pipeline]}``."""
        return {"results": list(self.deals.values()) if object_type == "deals" else []}

    def get(self, object_type: str, pipeline_id: str) -> dict:
        pipeline = self.deals.get(pipeline_id) if object_type == "deals" else None
        if pipeline is None:
            raise not_found(f"Unable to find pipeline {pipeline_id}")
        return pipeline

    def stages(self, object_type: str, pipeline_id: str) -> dict:
        return {"results": self.get(object_type, pipeline_id)["stages"]}

    # --- value check used by the object store -------------------------------------------
    def problems(self, props: dict) -> list[tuple[str, str, str]]:
        """``(name, message, code)`` for a deal's unknown pipeline or a stage outside it.

        A stage without a pipeline is checked against the default one (the only one
        seeded, so also the pipeline any existing deal is in). Empty values clear the
        property and are not checked. The INVALID_OPTION code and the "was not one of
        the allowed options" wording are from real bodies (notes §5); HubSpot prints
        the option list in its own longer form.
        """
        found = []
        pipeline_id = props.get("pipeline") or DEFAULT_PIPELINE
        pipeline = self.deals.get(pipeline_id)
        if pipeline is None:
            found.append(("pipeline", _not_allowed(pipeline_id, list(self.deals)), "INVALID_OPTION"))
        stage = props.get("dealstage")
        if stage and pipeline is not None:
            allowed = [s["id"] for s in pipeline["stages"]]
            if stage not in allowed:
                found.append(("dealstage", _not_allowed(stage, allowed), "INVALID_OPTION"))
        return found


def _not_allowed(value: str, allowed: list[str]) -> str:
    return f"{value} was not one of the allowed options: [{', '.join(allowed)}]"

"""The planner API's wire models: defined in `service.plan_protocol`, which both sides import (the service
never imports `planner_server`)."""

from service.plan_protocol import (MAX_QUESTION_CHARS, MAX_STEP_CHARS, PlanBatchRequest, PlanBatchResponse,
                                   PlanRequest, PlanResponse, PlanStep)

__all__ = ["MAX_QUESTION_CHARS", "MAX_STEP_CHARS", "PlanBatchRequest", "PlanBatchResponse", "PlanRequest",
           "PlanResponse", "PlanStep"]

"""The strategy catalog: the nine strategies as data, versioned by a hash of their content (L0)."""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

TERMINATION = "termination"
QUIET = "continuation"  # the quiet action: under a closed or shadow gate it injects nothing, whatever its text
UNGUIDED = "unguided"  # a step the reasoner writes with no strategy injected (the opening step): never a catalog id


class Strategy(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    label: str = Field(min_length=1, max_length=8, description="single-token label the planner scores")
    name: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1, description="shown to a prompted planner")
    instruction: str = Field(description="injected into the chain of thought; empty: nothing is injected and the "
                                         "reasoner goes on unprompted (a planner's way to leave it alone)")


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = "custom"
    strategies: tuple[Strategy, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _unique_and_terminating(self) -> Catalog:
        ids = [s.id for s in self.strategies]
        labels = [s.label for s in self.strategies]
        if len(set(ids)) != len(ids):
            raise ValueError("strategy ids must be unique")
        if len(set(labels)) != len(labels):
            raise ValueError("strategy labels must be unique")
        if UNGUIDED in ids:
            raise ValueError(f"'{UNGUIDED}' is reserved for the reasoner's own steps (no strategy injected)")
        if TERMINATION not in ids:
            raise ValueError(f"the catalog must contain a '{TERMINATION}' strategy")
        if not next(s for s in self.strategies if s.id == TERMINATION).instruction.strip():
            raise ValueError(f"the '{TERMINATION}' strategy needs an instruction: it opens the answer")
        return self

    @cached_property
    def version(self) -> str:
        """Content hash: changes whenever any id, label or text changes (the name does not count)."""
        payload = json.dumps([s.model_dump() for s in self.strategies], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.strategies]

    def index(self, strategy_id: str) -> int:
        try:
            return self.ids.index(strategy_id)
        except ValueError:
            raise KeyError(f"unknown strategy '{strategy_id}'; known: {', '.join(self.ids)}") from None

    def get(self, strategy_id: str) -> Strategy:
        return self.strategies[self.index(strategy_id)]

    def __len__(self) -> int:
        return len(self.strategies)

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "strategies": [s.model_dump() for s in self.strategies]}


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The default (paper) catalog, or a user's JSON file in the same shape."""
    if path is None:
        text = resources.files("service").joinpath("data/strategies.json").read_text(encoding="utf-8")
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"catalog file not found: {p}")
        text = p.read_text(encoding="utf-8")
    return Catalog.model_validate_json(text)

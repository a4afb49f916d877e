"""rsim service: the orchestrator that injects planner-chosen strategies into a reasoner's chain of thought."""

from service.catalog import Catalog, Strategy, load_catalog

__all__ = ["Catalog", "Strategy", "load_catalog", "__version__"]
__version__ = "0.1.0"

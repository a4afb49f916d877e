import json

import pytest
from pydantic import ValidationError

from service.catalog import TERMINATION, Catalog, load_catalog


def test_default_catalog_has_the_papers_nine_strategies():
    c = load_catalog()
    assert c.ids == ["self_reflection", "decomposition", "deep_thinking", "verification", "summarization",
                     "prioritization", "sub_planning", "continuation", "termination"]
    assert [s.label for s in c.strategies] == [str(i) for i in range(1, 10)]


def test_version_is_a_content_hash(tmp_path):
    c = load_catalog()
    assert c.version == load_catalog().version and len(c.version) == 12
    data = c.describe()
    data["strategies"][0]["instruction"] += " Carefully."
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "strategies": data["strategies"]}))
    mine = load_catalog(path)
    assert mine.name == "mine" and mine.version != c.version
    renamed = Catalog(name="other", strategies=c.strategies)
    assert renamed.version == c.version  # the name is not content


def test_invalid_catalogs_are_refused(tmp_path):
    c = load_catalog()
    with pytest.raises(ValidationError, match="termination"):
        Catalog(strategies=[s for s in c.strategies if s.id != TERMINATION])
    with pytest.raises(ValidationError, match="ids must be unique"):
        Catalog(strategies=[c.strategies[0], c.strategies[0], c.get(TERMINATION)])
    with pytest.raises(FileNotFoundError, match="catalog file not found"):
        load_catalog(tmp_path / "missing.json")


def test_lookup():
    c = load_catalog()
    assert c.get("verification").name == "Verification"
    with pytest.raises(KeyError, match="unknown strategy 'nope'"):
        c.index("nope")


def test_an_empty_instruction_injects_nothing_but_termination_needs_one():
    """configs/catalog-quiet-continuation.json: continuation injects nothing (the reasoner goes on by
    itself); termination opens the answer, so it must say something."""
    import json
    from pathlib import Path

    import pytest

    from service.catalog import Catalog, load_catalog

    quiet = load_catalog(Path(__file__).parents[2] / "configs" / "catalog-quiet-continuation.json")
    paper = load_catalog()
    assert quiet.get("continuation").instruction == "" and quiet.version != paper.version
    assert [s.id for s in quiet.strategies] == [s.id for s in paper.strategies]
    bad = json.loads(paper.model_dump_json())
    bad["strategies"][-1]["instruction"] = " "
    with pytest.raises(ValueError, match="termination"):
        Catalog.model_validate(bad)

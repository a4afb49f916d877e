"""Assembling an embedded model from its chunk packages: the size and sha256 checks reject what is not
the expected file, and `rsim up`'s conversion step fails with a message, in its own process."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from clients.embedded import EmbeddedModel, assemble_chunks, chunk_paths


def make_parts(root: Path, chunks: list[bytes]) -> tuple[str, ...]:
    names = []
    for i, data in enumerate(chunks, 1):
        pkg = root / f"rsimtest_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        names.append(pkg.name)
    return tuple(names)


@pytest.fixture
def parts(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    names = make_parts(tmp_path / "site", chunks)
    whole = b"".join(chunks)
    yield names, whole
    for n in names:
        sys.modules.pop(n, None)


def model(names, size, sha) -> EmbeddedModel:
    return EmbeddedModel(name="test", what="test model", packages=names, size=size, sha256=sha)


def test_chunks_are_concatenated_in_package_order_and_checked(parts, tmp_path):
    names, whole = parts
    seen = []
    out = assemble_chunks(model(names, len(whole), hashlib.sha256(whole).hexdigest()), tmp_path / "m.gguf",
                          lambda stage, done, total: seen.append((stage, done, total)))
    assert out.read_bytes() == whole
    assert seen[-1] == ("assemble", len(whole), len(whole))


def test_a_wrong_checksum_is_refused_and_leaves_no_file(parts, tmp_path):
    names, whole = parts
    with pytest.raises(RuntimeError, match="sha256"):
        assemble_chunks(model(names, len(whole), "0" * 64), tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def test_chunks_in_the_wrong_order_are_refused(parts, tmp_path):
    names, whole = parts
    with pytest.raises(RuntimeError, match="sha256"):  # same size, other bytes
        assemble_chunks(model(tuple(reversed(names)), len(whole), hashlib.sha256(whole).hexdigest()),
                        tmp_path / "m.gguf")


def test_a_wrong_size_is_refused_before_any_write(parts, tmp_path):
    names, whole = parts
    with pytest.raises(RuntimeError, match="expected"):
        assemble_chunks(model(names, len(whole) + 1, hashlib.sha256(whole).hexdigest()), tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def test_a_missing_part_package_is_named():
    with pytest.raises(RuntimeError, match="rsimtest-missing-part"):
        chunk_paths(model(("rsimtest_missing_part",), 1, "0" * 64))


def test_prepare_fails_with_a_message_when_the_conversion_fails(tmp_path):
    from clients.up import prepare

    with pytest.raises(RuntimeError, match="preparing the embedded no-such-model failed"):
        prepare("no-such-model", tmp_path)

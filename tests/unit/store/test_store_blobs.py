from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pyollama.errors import BadRequestError, DigestMismatchError, NotFoundError
from pyollama.store.blobs import BlobStore, parse_digest

HEX = "ab" * 32


@pytest.mark.parametrize("raw", [f"sha256:{HEX}", f"sha256-{HEX}", f"sha256:{HEX.upper()}"])
def test_parse_digest_canonicalises_accepted_forms(raw: str) -> None:
    assert parse_digest(raw) == f"sha256:{HEX}"


@pytest.mark.parametrize("raw", ["", HEX, f"sha256:{HEX[:-1]}", f"sha512:{HEX}", f"sha256:{HEX}0", f"sha256_{HEX}"])
def test_parse_digest_rejects_malformed(raw: str) -> None:
    with pytest.raises(BadRequestError, match="^invalid digest format$"):
        parse_digest(raw)


def test_write_stores_under_content_digest(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    data = [b"hello ", b"world"]
    digest, size = blobs.write(iter(data))
    expected = "sha256:" + hashlib.sha256(b"hello world").hexdigest()
    assert (digest, size) == (expected, 11)
    assert blobs.path(digest) == tmp_path / "blobs" / ("sha256-" + expected[7:])
    assert blobs.path(digest).read_bytes() == b"hello world"
    assert blobs.exists(digest) and blobs.size(digest) == 11
    assert blobs.list_digests() == [expected]


def test_write_with_matching_expected_digest_succeeds(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    expected = "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert blobs.write([b"abc"], expected=expected) == (expected, 3)


def test_write_mismatch_leaves_nothing_behind(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    wrong = "sha256:" + "0" * 64
    actual = "sha256:" + hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(DigestMismatchError) as info:
        blobs.write([b"abc"], expected=wrong)
    assert str(info.value) == f'digest mismatch, expected "{wrong}", got "{actual}"'
    assert info.value.status == 400
    assert list((tmp_path / "blobs").iterdir()) == []


def test_write_expected_digest_is_compared_string_exactly(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    dash_form = "sha256-" + hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(DigestMismatchError):
        blobs.write([b"abc"], expected=dash_form)
    with pytest.raises(BadRequestError, match="^invalid digest format$"):
        blobs.write([b"abc"], expected="md5:abc")
    assert list((tmp_path / "blobs").iterdir()) == []


def test_write_failure_midstream_leaves_nothing_behind(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)

    def chunks():
        yield b"partial data"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        blobs.write(chunks())
    assert list((tmp_path / "blobs").iterdir()) == []


def test_size_of_missing_blob_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        BlobStore(tmp_path).size("sha256:" + HEX)


def test_add_file_reuses_existing_blob(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "models")
    src = tmp_path / "model.bin"
    src.write_bytes(b"x" * 3_000_000)
    digest, size = blobs.add_file(src)
    mtime = blobs.path(digest).stat().st_mtime_ns
    assert blobs.add_file(src) == (digest, size)
    assert blobs.path(digest).stat().st_mtime_ns == mtime
    assert size == 3_000_000


def test_commit_partial_verifies_and_renames(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = "sha256:" + hashlib.sha256(b"downloaded").hexdigest()
    blobs.dir.mkdir(parents=True)
    blobs.partial_path(digest).write_bytes(b"downloaded")
    blobs.commit_partial(digest)
    assert blobs.path(digest).read_bytes() == b"downloaded"
    assert not blobs.partial_path(digest).exists()


def test_commit_partial_with_bad_bytes_deletes_partial(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    digest = "sha256:" + hashlib.sha256(b"downloaded").hexdigest()
    blobs.dir.mkdir(parents=True)
    blobs.partial_path(digest).write_bytes(b"corrupted!")
    with pytest.raises(DigestMismatchError, match="^digest mismatch, file must be downloaded again$"):
        blobs.commit_partial(digest)
    assert not blobs.partial_path(digest).exists()
    assert not blobs.exists(digest)

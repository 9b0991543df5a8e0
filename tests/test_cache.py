"""Content digests, their memo, and the cache location."""

from __future__ import annotations

import hashlib
import os

from sc_eval.cache import cache_key, default_cache_dir, file_sha256, memo_digest, tree_sha256


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SC_EVAL_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("SC_EVAL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "sc-eval"


def test_file_and_tree_digests(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 3_000_000)
    assert file_sha256(tmp_path / "a") == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    (tmp_path / "b").write_bytes(b"y")
    t = tree_sha256(tmp_path, ["a", "b"])
    assert t != tree_sha256(tmp_path, ["b", "a"])  # paths and order count
    os.rename(tmp_path / "b", tmp_path / "c")
    assert tree_sha256(tmp_path, ["a", "c"]) != t


def test_memo_skips_rehashing_until_the_file_changes(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"one")
    calls = []

    def compute():
        calls.append(1)
        return file_sha256(f)

    first = memo_digest([f], compute, cache_dir=tmp_path / "c")
    assert memo_digest([f], compute, cache_dir=tmp_path / "c") == first
    assert len(calls) == 1
    f.write_bytes(b"two!")
    assert memo_digest([f], compute, cache_dir=tmp_path / "c") != first
    assert len(calls) == 2
    assert memo_digest([f], compute, cache_dir=None) and len(calls) == 3


def test_cache_key_is_order_independent():
    assert cache_key({"a": 1, "b": [2]}) == cache_key({"b": [2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})

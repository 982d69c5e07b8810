from pathlib import Path

from synclip.data import cache_dir


def test_cache_dir_follows_env_and_is_created(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b"
    monkeypatch.setenv("SYNCLIP_DATA", str(target))
    assert cache_dir() == target
    assert target.is_dir()


def test_cache_dir_defaults_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNCLIP_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == Path(tmp_path) / ".cache" / "synclip"
    assert cache_dir().is_dir()

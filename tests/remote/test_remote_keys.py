"""`sysmonctl keys` and the key-file rules of shared/curve.py (no sockets, no BPF)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq

from shared.curve import CurveError, load_client_keys, load_public, load_secret
from sysmonctl.cli import main as sysmonctl


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_collector_pair_modes_and_instructions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "keys"
    assert sysmonctl(["keys", "collector", str(d)]) == 0
    out = capsys.readouterr().out
    assert mode(d / "collector.key_secret") == 0o600
    assert mode(d / "collector.key") == 0o644
    assert (d / "clients").is_dir() and mode(d / "clients") == 0o755
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temporary left behind
    pair = load_secret(d / "collector.key_secret")
    assert load_public(d / "collector.key") == pair.public
    assert zmq.curve_public(pair.secret) == pair.public
    assert "--curve-clients" in out and str(d / "clients") in out and "Copy" in out


def test_filterd_pair_owner_and_no_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sysmonctl(["keys", "filterd", str(tmp_path), "--name", "loghost", "--owner", "root"]) == 0
    secret = tmp_path / "loghost.key_secret"
    assert mode(secret) == 0o600 and secret.stat().st_uid == 0
    assert "clients/" in capsys.readouterr().out
    first = secret.read_bytes()
    assert sysmonctl(["keys", "filterd", str(tmp_path), "--name", "loghost"]) == 1
    assert "not overwriting" in capsys.readouterr().err
    assert secret.read_bytes() == first
    again = ["keys", "filterd", str(tmp_path), "--name", "loghost", "--owner", "root", "--force"]
    assert sysmonctl(again) == 0
    assert secret.read_bytes() != first
    capsys.readouterr()
    assert sysmonctl(["keys", "show", str(tmp_path / "loghost.key")]) == 0
    assert capsys.readouterr().out.strip().encode() == load_public(secret)


def test_unsafe_or_wrong_key_files_are_refused(tmp_path: Path) -> None:
    assert sysmonctl(["keys", "collector", str(tmp_path)]) == 0
    secret, public = tmp_path / "collector.key_secret", tmp_path / "collector.key"
    os.chmod(secret, 0o640)
    with pytest.raises(CurveError, match="accessible by group or others"):
        load_secret(secret)
    os.chmod(secret, 0o600)
    with pytest.raises(CurveError, match="holds no secret key"):
        os.chmod(public, 0o600)
        load_secret(public)
    bad = tmp_path / "bad.key"
    bad.write_text('curve\n    public-key = "short"\n')
    with pytest.raises(CurveError, match="malformed"):
        load_public(bad)
    with pytest.raises(CurveError, match="cannot read"):
        load_secret(tmp_path / "missing.key_secret")


def test_client_directory_must_not_be_writable_by_others(tmp_path: Path) -> None:
    clients = tmp_path / "clients"
    clients.mkdir(mode=0o755)
    assert load_client_keys(clients) == frozenset()
    assert sysmonctl(["keys", "filterd", str(clients), "--name", "a", "--owner", "root"]) == 0
    assert load_client_keys(clients) == {load_public(clients / "a.key")}
    os.chmod(clients, 0o777)
    with pytest.raises(CurveError, match="writable by group or others"):
        load_client_keys(clients)
    os.chmod(clients, 0o755)
    os.chmod(clients / "a.key", 0o666)
    with pytest.raises(CurveError, match="writable by group or others"):
        load_client_keys(clients)
    with pytest.raises(CurveError, match="not a directory"):
        load_client_keys(clients / "a.key_secret")

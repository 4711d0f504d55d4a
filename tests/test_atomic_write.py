"""fer_core.base.files: atomic writes through a temp file beside the target."""
import os
import stat

import numpy as np
import pytest

from fer_core.base.files import atomic_write, write_temp
from fer_core.models import registry


def test_bytes_text_and_writers_replace_the_file_whole(tmp_path):
    target = tmp_path / "out.json"
    assert atomic_write(target, b"old") == target and target.read_bytes() == b"old"
    atomic_write(target, "néw")
    assert target.read_text(encoding="utf-8") == "néw"
    arrays = tmp_path / "x.npz"
    atomic_write(arrays, lambda p: np.savez(p, a=np.arange(3)))  # the temp name keeps .npz: savez adds none
    with np.load(arrays) as z:
        assert z["a"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "x.npz"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "model.weights.h5"
    target.write_bytes(b"old")

    def fails(path):
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fails)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.weights.h5"]


def test_temp_names_are_unique_hidden_and_keep_the_suffixes(tmp_path):
    a, b = write_temp(tmp_path / "model.weights.h5", b"1"), write_temp(tmp_path / "model.weights.h5", b"2")
    assert a != b and a.name.startswith(".") and a.name.endswith(".weights.h5")


def test_cards_are_world_readable_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        registry.write_card(tmp_path, {"id": "x"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / registry.CARD_FILE).stat().st_mode) == 0o644

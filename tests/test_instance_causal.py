"""The causal flag of the interchange format (issue 16): top-left mask, hash, round trip, bad flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness import families
from harness.errors import HarnessError
from harness.instance import Instance, attention_mask
from harness.io import load_instance, save_instance


def test_mask_is_top_left_like_torch_sdpa():
    torch.manual_seed(0)
    for Lq, Lk in ((5, 5), (3, 7), (7, 3), (1, 4), (4, 1)):
        q, k, v = (
            torch.randn(1, Lq, 2, dtype=torch.float64),
            torch.randn(1, Lk, 2, dtype=torch.float64),
            torch.randn(1, Lk, 2, dtype=torch.float64),
        )
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        got = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask(Lq, Lk, True)
        )
        assert torch.allclose(want, got, atol=1e-14)
        assert attention_mask(Lq, Lk, True)[:, 0].all()  # every row sees key 0


def test_causal_flag_round_trips_and_enters_the_hash(tmp_path):
    inst = families.bounded(L=16, d=3, r=2, seed=4, causal=True)
    plain = families.bounded(L=16, d=3, r=2, seed=4)
    assert inst.causal and not plain.causal and inst.sha256 != plain.sha256
    assert dict(inst.arrays).keys() == dict(plain.arrays).keys()
    assert "causal" in inst.describe() and inst.meta["params"]["causal"] is True
    assert "causal" not in plain.meta["params"]
    save_instance(inst, tmp_path / "c.npz")
    save_instance(plain, tmp_path / "p.npz")
    back = load_instance(tmp_path / "c.npz")
    assert back.causal and back.sha256 == inst.sha256 and back.meta["causal"] is True
    with np.load(tmp_path / "p.npz") as z:  # absent means false; old files unchanged
        assert "causal" not in z.files
    with np.load(tmp_path / "c.npz") as z:
        assert z["causal"].shape == () and z["causal"].dtype == bool and bool(z["causal"])
    assert not load_instance(tmp_path / "p.npz").causal
    assert inst.replace(Y=np.zeros((1, 16, 3))).causal and not inst.replace(causal=False).causal
    # a plain numpy.savez file with a causal array loads
    np.savez(tmp_path / "raw.npz", **dict(plain.arrays), causal=np.array(True))
    assert load_instance(tmp_path / "raw.npz").causal


def test_bad_causal_flags_are_one_line_errors(tmp_path):
    base = dict(families.bounded(L=4, d=2, r=1, seed=0).arrays)
    for bad in (np.array([True, False]), np.array(0.5), np.array("yes"), 2):
        with pytest.raises(HarnessError, match="'causal' must be") as e:
            Instance.from_arrays({**base, "causal": bad})
        assert "\n" not in str(e.value)
    assert Instance.from_arrays({**base, "causal": 1}).causal
    inst = families.bounded(L=4, d=2, r=1, seed=0, causal=True)
    save_instance(inst, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        raw = {k: z[k] for k in z.files}
    raw["causal"] = np.array(False)  # tampered flag: sha256 mismatch
    np.savez(tmp_path / "t.npz", **raw)
    with pytest.raises(HarnessError, match="corrupt instance file"):
        load_instance(tmp_path / "t.npz")

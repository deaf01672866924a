"""Instance validation, the interchange format, atomic and reproducible writes."""

import json
import os

import numpy as np
import pytest
from hypothesis import given

from harness import families
from harness.errors import HarnessError
from harness.instance import Instance
from harness.io import load_gradients, load_instance, save_gradients, save_instance
from harness.solvers import get_solver
from harness.strategies import instances


def _arrays(L=4, d=3, r=2):
    rng = np.random.default_rng(0)
    a = dict(
        X_q=rng.normal(size=(L, d)),
        W_q=rng.normal(size=(d, d)),
        W_k=rng.normal(size=(d, d)),
        W_v=rng.normal(size=(d, d)),
        Y=rng.normal(size=(L, d)),
        A_q=rng.normal(size=(r, d)),
        B_q=rng.normal(size=(d, r)),
    )
    return a


@given(inst=instances(max_L=6, max_d=4))
def test_round_trip_bit_exact(tmp_path_factory, inst):
    p = tmp_path_factory.mktemp("rt") / "inst.npz"
    save_instance(inst, p)
    back = load_instance(p)
    assert set(back.arrays) == set(inst.arrays)
    for k, v in inst.arrays.items():
        assert back.arrays[k].dtype == v.dtype and back.arrays[k].tobytes() == v.tobytes()
    assert (back.alpha, back.beta) == (inst.alpha, inst.beta)
    assert back.sha256 == inst.sha256
    assert back.meta["seed"] == inst.meta["seed"]


def test_same_seed_same_bytes(tmp_path):
    for i in range(2):
        save_instance(families.bounded(L=32, d=4, r=2, seed=7), tmp_path / f"{i}.npz")
    assert (tmp_path / "0.npz").read_bytes() == (tmp_path / "1.npz").read_bytes()
    save_instance(families.bounded(L=32, d=4, r=2, seed=8), tmp_path / "2.npz")
    assert (tmp_path / "0.npz").read_bytes() != (tmp_path / "2.npz").read_bytes()


def test_plain_numpy_savez_loads(tmp_path):
    a = _arrays()
    np.savez(tmp_path / "plain.npz", **a, alpha=np.array(2.0), beta=np.array(0.5))
    inst = load_instance(tmp_path / "plain.npz")
    assert inst.adapted == ("q",) and inst.alpha == 2.0 and inst.beta == 0.5
    assert inst.self_attention
    np.savez(tmp_path / "noscalars.npz", **a)
    assert load_instance(tmp_path / "noscalars.npz").alpha == 1.0


def test_float32_and_int_arrays():
    a = {k: v.astype(np.float32) for k, v in _arrays().items()}
    assert Instance.from_arrays(a).arrays["X_q"].dtype == np.float32
    a["X_q"] = np.ones((4, 3), dtype=np.int64)
    assert Instance.from_arrays(a).arrays["X_q"].dtype == np.float64


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a.update(X_q=a["X_q"][:, :2]), "feature size"),
        (lambda a: a.update(W_k=np.ones((3, 4))), "W_k has shape"),
        (lambda a: a.update(A_q=np.ones((4, 3)), B_q=np.ones((3, 4))), "exceeds d=3"),
        (lambda a: a.update(B_q=np.ones((3, 1))), "B_q has shape"),
        (lambda a: a.pop("B_q"), "incomplete"),
        (lambda a: a.update(Y=np.ones((5, 3))), "Y has shape"),
        (lambda a: a.update(X_k=np.ones((2, 4, 3))), "dimensions"),
        (lambda a: a.update(X_k=np.ones((5, 3)), X_v=np.ones((4, 3))), "keys and values"),
        (lambda a: a.__setitem__("X_q", np.full((4, 3), np.nan)), "NaN or inf"),
        (lambda a: a.__setitem__("W_v", np.full((3, 3), np.inf)), "NaN or inf"),
        (lambda a: a.update(alpha=np.array(np.nan)), "alpha"),
        (lambda a: a.update(beta=np.ones(2)), "beta"),
        (lambda a: a.update(Xq=np.ones(3)), "unknown array name 'Xq'"),
        (lambda a: a.pop("W_q"), "missing array 'W_q'"),
        (lambda a: a.update(X_q=np.ones((0, 3)), Y=np.ones((0, 3))), "length 0"),
        (lambda a: a.update(X_q=np.array(["a"] * 12).reshape(4, 3)), "dtype"),
    ],
)
def test_validation_errors_are_one_line(mutate, message):
    a = _arrays()
    mutate(a)
    with pytest.raises(HarnessError) as exc:
        Instance.from_arrays(a)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_batched_consistency():
    a = _arrays()
    a = {k: (np.stack([v, v]) if k in ("X_q", "Y") else v) for k, v in a.items()}
    inst = Instance.from_arrays(a)
    assert inst.N == 2 and inst.batched
    a["Y"] = a["Y"][:1]
    with pytest.raises(HarnessError, match="Y has"):
        Instance.from_arrays(a)


def test_instances_are_immutable():
    inst = families.bounded(L=8, d=2, seed=0)
    with pytest.raises(ValueError):
        inst.arrays["X_q"][0, 0, 0] = 1.0
    with pytest.raises(TypeError):
        inst.arrays["X_q"] = None


def test_corrupt_files(tmp_path):
    p = tmp_path / "x.npz"
    p.write_bytes(b"not a zip file at all")
    with pytest.raises(HarnessError, match="corrupt instance file"):
        load_instance(p)
    inst = families.bounded(L=8, d=2, seed=0)
    save_instance(inst, p)
    data = bytearray(p.read_bytes())
    half = p.with_name("half.npz")
    half.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(HarnessError, match="corrupt"):
        load_instance(half)
    # tamper with one array but keep the recorded sha256: detected
    raw = dict(np.load(p))
    raw["X_q"] = raw["X_q"] + 1.0
    np.savez(tmp_path / "tampered.npz", **raw)
    with pytest.raises(HarnessError, match="sha256"):
        load_instance(tmp_path / "tampered.npz")
    with pytest.raises(HarnessError, match="does not exist"):
        load_instance(tmp_path / "missing.npz")


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "inst.npz"
    inst = families.bounded(L=8, d=2, seed=0)
    save_instance(inst, p)
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(HarnessError, match="cannot write .*disk full"):
        save_instance(families.bounded(L=8, d=2, seed=1), p)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["inst.npz"]  # no temp file left behind


def test_gradients_round_trip(tmp_path):
    inst = families.bounded(L=16, d=4, r=2, adapt=("q", "k", "v"), seed=0)
    res = get_solver("closed-form").solve(inst)
    save_gradients(res.grads, res.loss, tmp_path / "g.npz", meta={"solver": "closed-form"})
    grads, loss, meta = load_gradients(tmp_path / "g.npz")
    assert loss == res.loss and meta["solver"] == "closed-form"
    assert set(grads) == {"dA_q", "dB_q", "dA_k", "dB_k", "dA_v", "dB_v"}
    for k in grads:
        assert grads[k].tobytes() == res.grads[k].tobytes()


def test_metadata_records_generator_and_seed(tmp_path):
    inst = families.threshold(L=16, d=4, r=2, c=1.5, seed=3)
    save_instance(inst, tmp_path / "t.npz")
    meta = json.loads(str(np.load(tmp_path / "t.npz")["__meta__"]))
    assert meta["generator"] == "threshold" and meta["seed"] == 3 and meta["params"]["c"] == 1.5
    assert meta["sha256"] == inst.sha256 and meta["format_version"] == 1


def test_bounded_family_meets_its_norm_bound():
    for cross in (False, True):
        inst = families.bounded(L=64, d=6, r=3, gamma=1.3, adapt=("q", "k"), seed=1, cross=cross)
        t = inst.as_torch()
        from harness.losses import effective_weights

        W = effective_weights(t, inst.alpha, inst.r)
        gq = float((t["X_q"] @ W["q"]).abs().max())
        gk = float((t["X_k"] @ W["k"]).abs().max())
        assert max(gq, gk) == pytest.approx(1.3, rel=1e-12)
        assert gq <= 1.3 * (1 + 1e-12) and gk <= 1.3 * (1 + 1e-12)


def test_written_files_have_normal_permissions(tmp_path):
    p = tmp_path / "perm.npz"
    save_instance(families.bounded(L=4, d=2, seed=0), p)
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)

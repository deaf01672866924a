"""CLI: generate, solve, solvers, check; every validation error is one line and a non-zero exit."""

import subprocess
import sys

import numpy as np
import pytest

from harness.cli import main
from harness.io import load_gradients, load_instance


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_solve_check(tmp_path, capsys):
    inst = tmp_path / "inst.npz"
    code, out, _ = run(
        capsys,
        "generate",
        "bounded",
        "--L",
        "64",
        "--d",
        "8",
        "--r",
        "4",
        "--gamma",
        "1.0",
        "--adapt",
        "q,v",
        "--seed",
        "0",
        "--out",
        str(inst),
    )
    assert code == 0 and "wrote" in out
    loaded = load_instance(inst)
    assert loaded.adapted == ("q", "v") and loaded.r == 4 and loaded.L == 64
    grads = tmp_path / "g.npz"
    code, out, _ = run(capsys, "solve", str(inst), "--solver", "closed-form", "--out", str(grads))
    assert code == 0
    for word in ("loss:", "time:", "peak mem:"):
        assert word in out
    g, loss, meta = load_gradients(grads)
    assert set(g) == {"dA_q", "dB_q", "dA_v", "dB_v"} and np.isfinite(loss)
    assert meta["instance_sha256"] == loaded.sha256
    code, out, _ = run(capsys, "check", str(inst), "--solver", "streaming")
    assert code == 0 and "PASS" in out
    code, out, _ = run(
        capsys, "check", str(inst), "--solver", "closed-form", "--dtype", "float32", "--tol", "1e-14"
    )
    assert code == 1 and "FAIL" in out


def test_solvers_lists_exact_ones(capsys):
    code, out, _ = run(capsys, "solvers")
    assert code == 0
    for name in ("autograd", "closed-form", "streaming"):
        assert name in out
    assert "exact" in out


def _write(tmp_path, name, **arrays):
    rng = np.random.default_rng(0)
    base = dict(
        X_q=rng.normal(size=(4, 3)),
        W_q=np.eye(3),
        W_k=np.eye(3),
        W_v=np.eye(3),
        Y=np.zeros((4, 3)),
        A_q=np.ones((2, 3)),
        B_q=np.ones((3, 2)),
    )
    base.update(arrays)
    for k in [k for k, v in base.items() if v is None]:
        del base[k]
    p = tmp_path / name
    np.savez(p, **base)
    return str(p)


BAD = {
    "shape": (dict(W_k=np.eye(4)), "W_k has shape"),
    "nan": (dict(X_q=np.full((4, 3), np.nan)), "NaN"),
    "inf": (dict(Y=np.full((4, 3), np.inf)), "NaN or inf"),
    "rank": (dict(A_q=np.ones((4, 3)), B_q=np.ones((3, 4))), "exceeds d=3"),
    "N": (dict(X_q=np.ones((2, 4, 3)), Y=np.ones((3, 4, 3))), "Y has"),
    "L": (dict(X_k=np.ones((5, 3)), X_v=np.ones((6, 3))), "keys and values"),
    "d": (dict(X_q=np.ones((4, 2)), Y=np.ones((4, 2))), "feature size"),
    "incomplete": (dict(B_q=None), "incomplete"),
    "name": (dict(Wq=np.eye(3)), "unknown array name"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_instance_is_one_line_error(tmp_path, capsys, case):
    arrays, needle = BAD[case]
    p = _write(tmp_path, f"{case}.npz", **arrays)
    code, out, err = run(capsys, "solve", p, "--solver", "closed-form")
    assert code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_other_bad_input(tmp_path, capsys):
    good = _write(tmp_path, "good.npz")
    code, _, err = run(capsys, "solve", good, "--solver", "no-such-solver")
    assert code == 2 and "unknown solver 'no-such-solver'" in err
    code, _, err = run(capsys, "solve", good, "--solver", "nomodule_xyz:fn")
    assert code == 2 and "cannot import" in err
    code, _, err = run(capsys, "solve", good, "--solver", "streaming", "--opt", "bogus=1")
    assert code == 2 and "no option 'bogus'" in err
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04garbage")
    code, _, err = run(capsys, "solve", str(corrupt))
    assert code == 2 and "corrupt" in err
    code, _, err = run(
        capsys, "generate", "bounded", "--L", "8", "--d", "2", "--r", "3", "--out", str(tmp_path / "x.npz")
    )
    assert code == 2 and "r=3" in err
    code, _, err = run(
        capsys,
        "generate",
        "bounded",
        "--L",
        "8",
        "--d",
        "2",
        "--adapt",
        "q,z",
        "--out",
        str(tmp_path / "x.npz"),
    )
    assert code == 2 and "'z'" in err
    code, _, err = run(
        capsys, "generate", "bounded", "--L", "8", "--d", "2", "--out", str(tmp_path / "nofolder" / "x.npz")
    )
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, "solve", good, "--device", "cuda:0") if not _cuda() else (2, "", "CUDA")
    assert code == 2 and "CUDA" in err


def _cuda():
    import torch

    return torch.cuda.is_available()


def test_console_script_exit_code(tmp_path):
    """A real process: bad input gives exit 2 and one line on stderr, no traceback."""
    p = _write(tmp_path, "nan.npz", X_q=np.full((4, 3), np.nan))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "solve", p], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "NaN" in proc.stderr


def test_third_party_callable_solver(tmp_path, capsys):
    inst = tmp_path / "i.npz"
    run(capsys, "generate", "bounded", "--L", "16", "--d", "4", "--r", "2", "--out", str(inst))
    code, out, _ = run(capsys, "check", str(inst), "--solver", "tests.thirdparty:exact_solver")
    assert code == 0 and "PASS" in out
    code, out, err = run(capsys, "check", str(inst), "--solver", "tests.thirdparty:broken_shape")
    assert code == 2 and "shape" in err

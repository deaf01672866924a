"""Loading a local Hugging Face model folder offline (nothing is fetched from a hub), and its text."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import HarnessError

SAMPLE_TEXT = Path(__file__).resolve().parent.parent / "data" / "sample_text.txt"


def require_transformers():
    """Import transformers offline, or raise a one-line HarnessError naming the missing extra."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise HarnessError(
            "the audit needs the 'models' extra: pip install 'lora-limits[models]' "
            "(transformers, safetensors)"
        ) from None
    return transformers


def load_model(model_dir: str | os.PathLike):
    """(model, tokenizer or None) from a local Hugging Face folder, or from a single GGUF file (a
    ``*.gguf`` path, or a folder holding exactly one and no config.json; transformers' GGUF loader needs
    the packages gguf and accelerate). Nothing is fetched from a hub."""
    tf = require_transformers()
    try:
        tf.utils.logging.set_verbosity_error()
        tf.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover - old versions
        pass
    path, gguf = _model_path(Path(model_dir))
    extra = {"gguf_file": gguf} if gguf else {}
    try:
        try:
            model = tf.AutoModel.from_pretrained(
                str(path), local_files_only=True, attn_implementation="eager", **extra
            )
        except (TypeError, ValueError):
            model = tf.AutoModel.from_pretrained(str(path), local_files_only=True, **extra)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:300]
        raise HarnessError(f"cannot load a model from {path}: {type(exc).__name__}: {msg}") from None
    model = _as_float32(model).eval()
    tokenizer = None
    if gguf or any(
        (path / n).is_file() for n in ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer_config.json")
    ):
        try:
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path), local_files_only=True, **extra)
        except Exception:
            tokenizer = None
    return model, tokenizer


def _model_path(path: Path) -> tuple[Path, str | None]:
    """(folder, gguf file name or None), with the one-line errors of a folder that holds no model."""
    gguf = None
    if path.is_file() and path.suffix == ".gguf":
        path, gguf = path.parent, path.name
    if not path.is_dir():
        raise HarnessError(f"model folder {path} does not exist")
    if gguf is None and not (path / "config.json").is_file():
        found = sorted(p.name for p in path.glob("*.gguf"))
        if len(found) != 1:
            more = f"; {len(found)} .gguf files, name one" if found else ""
            raise HarnessError(f"{path} is not a Hugging Face model folder (no config.json{more})")
        gguf = found[0]
    if gguf is None:
        weights = [
            p
            for p in path.iterdir()
            if p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json")
        ]
        if not weights:
            raise HarnessError(f"{path} is not a model folder with weights (no *.safetensors or *.bin)")
        return path, None
    for mod in ("gguf", "accelerate"):
        try:
            __import__(mod)
        except ImportError:
            raise HarnessError(f"loading {gguf} needs the package {mod!r} (pip install {mod})") from None
    return path, gguf


def _as_float32(model):
    """The model in float32. transformers refuses `.float()` on models it marks as quantized (a GGUF file
    is de-quantized on load and keeps that mark), so their parameters are cast in place instead."""
    import torch

    try:
        return model.float()
    except ValueError:
        with torch.no_grad():
            for p in list(model.parameters()) + list(model.buffers()):
                if p.is_floating_point() and p.dtype != torch.float32:
                    p.data = p.data.float()
        return model


def tokenize(text: str, tokenizer, vocab_size: int, max_tokens: int | None) -> tuple[list[int], str]:
    """Token ids for one unpadded sequence, truncated to `max_tokens`. Without a tokenizer (random test
    models) the UTF-8 bytes modulo the vocabulary size are used."""
    if not text.strip():
        raise HarnessError("the text is empty")
    if tokenizer is not None:
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        kind = type(tokenizer).__name__
        if max_tokens and len(ids) > max_tokens:
            # keep a final special token (e.g. [SEP]) when the tokenizer adds one
            last = ids[-1] if ids[-1] in (getattr(tokenizer, "all_special_ids", None) or []) else None
            ids = ids[: max_tokens - 1] + [last] if last is not None and max_tokens > 1 else ids[:max_tokens]
    else:
        ids = [b % vocab_size for b in text.encode("utf-8")]
        kind = "bytes"
        if max_tokens:
            ids = ids[:max_tokens]
    if len(ids) < 2:
        raise HarnessError("the text gives fewer than 2 tokens")
    return list(ids), kind


def read_text(path: str | os.PathLike | None) -> str:
    """The text to audit: a regular UTF-8 file (the built-in sample when `path` is None)."""
    from harness.fsio import check_readable

    p = check_readable(SAMPLE_TEXT if path is None else path, "text")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"text file {p} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not text.strip():
        raise HarnessError(f"text file {p} is empty")
    return text

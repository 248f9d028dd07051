# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Opt-in Hub layer kernels (norms, activations) for decoding, through `kernels.kernelize`; never an error."""

from __future__ import annotations

import contextlib
import logging

import torch

logger = logging.getLogger("hf_jacobi")


def default_layer_mapping() -> dict:
    """Hub kernels for the hub-kernel-enabled layers of transformers' decoder models, for inference on CUDA.

    `RMSNorm` and `SiLU` are the names transformers gives those layers with `use_kernel_forward_from_hub`; the
    repositories are the ones transformers' own `use_kernels=True` mapping uses for them.
    """
    from kernels import LayerRepository, Mode

    return {
        "RMSNorm": {
            "cuda": {
                Mode.INFERENCE: LayerRepository(
                    "kernels-community/liger-kernels", layer_name="LigerRMSNorm", version=3
                )
            }
        },
        "SiLU": {
            "cuda": {Mode.INFERENCE: LayerRepository("kernels-community/activation", layer_name="Silu", version=1)}
        },
    }


def _device_type(model: torch.nn.Module, device) -> str:
    if device is not None:
        return device if isinstance(device, str) else torch.device(device).type
    parameter = next(model.parameters(), None)
    device_type = "cpu" if parameter is None else parameter.device.type
    if device_type == "cuda" and torch.version.hip is not None:
        return "rocm"  # how `kernels` names AMD GPUs
    return device_type


def _kernel_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Modules whose forward `kernelize` may replace: hub-kernel-enabled layers and attached kernel functions."""
    modules = []
    for module in model.modules():
        if hasattr(type(module), "kernel_layer_name"):
            modules.append(module)
        modules.extend(getattr(module, "_kernel_funcs", {}).values())
    return list({id(module): module for module in modules}.values())


class _DropUnmapped(logging.Filter):
    """`kernelize` warns once per layer instance without a mapping; those layers simply keep their forward."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No kernel mapping found" not in record.getMessage()


@contextlib.contextmanager
def _quiet_unmapped():
    kernels_logger = logging.getLogger("kernels.layer.layer")
    log_filter = _DropUnmapped()
    kernels_logger.addFilter(log_filter)
    try:
        yield
    finally:
        kernels_logger.removeFilter(log_filter)


def _why_no_layers() -> str:
    """transformers marks its layers for `kernelize` only when it supports the installed `kernels` version."""
    import transformers
    from transformers.utils import is_kernels_available

    import kernels

    if is_kernels_available():
        return ""
    return (
        f" (transformers {transformers.__version__} enables Hub kernels on its layers only with a `kernels` version it"
        f" supports; installed: {kernels.__version__})"
    )


def _short(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


def kernelize_for_decoding(model: torch.nn.Module, mapping: dict | None = None, *, device=None) -> torch.nn.Module:
    """Swap the model's hub-kernel-enabled layers (RMSNorm, SiLU, ...) for Hub kernels, for inference.

    Runs `kernels.kernelize(model, mode=Mode.INFERENCE)` under `use_kernel_mapping(mapping)`, with only the mapping
    entries whose kernels load for the model's device. When none applies (CPU, offline without a cached kernel, no
    matching layer) or kernelization fails, the model is returned unchanged. Either way one line goes to the
    `hf_jacobi` logger. Layer kernels change floating-point results slightly: greedy Jacobi decoding stays exact with
    respect to the kernelized model.

    Args:
        model (`torch.nn.Module`): a transformers model (modified in place when kernels apply).
        mapping (`dict`, *optional*): a `kernels` layer mapping `{layer_name: {device: repo or {Mode: repo}}}`;
            `default_layer_mapping()` by default.
        device (`str` or `torch.device`, *optional*): device type to load kernels for; the model's by default.

    Returns:
        The same model object.
    """
    try:
        from kernels import Mode, kernelize, use_kernel_mapping
    except ImportError as error:
        logger.info("kernelize_for_decoding: model unchanged, the `kernels` library is unavailable (%s).", error)
        return model

    mapping = default_layer_mapping() if mapping is None else mapping
    device_type = _device_type(model, device)
    modules = _kernel_modules(model)
    layer_names = sorted({type(module).kernel_layer_name for module in modules})
    wanted = {}
    for name in layer_names:
        for key, entry in mapping.get(name, {}).items():
            if getattr(key, "type", key) == device_type:
                wanted[name] = {key: entry}
    if not layer_names:
        logger.info(
            "kernelize_for_decoding: model unchanged, it has no hub-kernel-enabled layers%s.", _why_no_layers()
        )
        return model
    if not wanted:
        logger.info(
            "kernelize_for_decoding: model unchanged, the mapping has no %s kernel for its layers (%s).",
            device_type,
            ", ".join(layer_names),
        )
        return model

    usable, failures = {}, []
    for name, entries in wanted.items():
        repos = [
            repo for entry in entries.values() for repo in (entry.values() if isinstance(entry, dict) else [entry])
        ]
        try:
            for repo in repos:
                repo.load()
        except Exception as error:  # noqa: BLE001 (offline without cache, no build for this system, ...)
            failures.append(f"{name}: {_short(error)}")
        else:
            usable[name] = entries
    if not usable:
        logger.warning(
            "kernelize_for_decoding: model unchanged, no layer kernel could be loaded for %s (%s).",
            device_type,
            "; ".join(failures),
        )
        return model

    saved = [(module, module.__dict__.get("forward")) for module in modules]
    try:
        with use_kernel_mapping(usable, inherit_mapping=False), _quiet_unmapped():
            kernelize(model, mode=Mode.INFERENCE, device=device_type, use_fallback=True)
    except Exception as error:  # noqa: BLE001 (never an error: undo and keep the model's own layers)
        for module, forward in saved:  # kernelize swaps `forward` on instances: undo every swap
            if forward is None:
                module.__dict__.pop("forward", None)
            else:
                module.forward = forward
        logger.warning("kernelize_for_decoding: model unchanged, kernelize failed (%s).", _short(error))
        return model
    logger.info(
        "kernelize_for_decoding: %s layers use Hub kernels on %s%s.",
        ", ".join(usable),
        device_type,
        f"; not loaded: {'; '.join(failures)}" if failures else "",
    )
    return model

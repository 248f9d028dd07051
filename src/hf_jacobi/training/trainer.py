"""Trainer for Jacobi Forcing: SFTTrainer with a packed noisy/clean forward and two losses."""

from __future__ import annotations

import copy
import os
import re
import types
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import ClassVar

import torch
from datasets import Dataset, DatasetDict
from huggingface_hub import ModelCard
from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin, TrainerCallback
from trl import SFTTrainer

from ..filler_gate import gated_filler
from .collator import JacobiForcingCollator
from .config import JacobiForcingConfig
from .losses import IGNORE_INDEX, ar_loss, consistency_loss, distillation_loss, hard_consistency_loss
from .packing import pack_trajectories, packing_info, validate_packed_dataset

_CITATION = """\
@article{hu2025fast,
  title         = {Fast and Accurate Causal Parallel Decoding using Jacobi Forcing},
  author        = {Hu, Lanxiang and Kou, Siqi and Fu, Yichao and Rajbhandari, Samyam and Rosing, Tajana and He, Yuxiong and Deng, Zhijie and Zhang, Hao},
  year          = {2025},
  eprint        = {2512.14681},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CL},
}"""


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


# Keys of a collated batch that are model inputs; the others feed the losses
_MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")


def copy_model(model: PreTrainedModel) -> PreTrainedModel:
    """A deep copy of `model` that runs its own weights.

    `SFTTrainer` patches `model.forward` (a PEFT model's inner model's too) with a closure over the original bound
    `forward` (TRL's fused LM head), and `copy.deepcopy` keeps closures as they are: a plain copy of a model that went
    through a trainer runs the *original* model, whatever is done to the copy's weights or dtype. The copy drops every
    instance-level `forward` method (it only matters with `fused_lm_head=True`, which this trainer does not use).
    """
    clone = copy.deepcopy(model)
    for module in clone.modules():
        if isinstance(module.__dict__.get("forward"), types.MethodType):
            del module.__dict__["forward"]
    return clone


class JacobiForcingTrainer(SFTTrainer):
    """Train a causal LM with Jacobi Forcing (arXiv 2512.14681, progressive consistency distillation): AR loss plus consistency distillation from clean
    blocks to noisy blocks, both from one forward over `[prompt | k_0 | c_0 | k_1 | c_1 | ...]`.

    Used like [`~trl.SFTTrainer`]; the differences:

    - `train_dataset` holds either packed records ([`pack_trajectories`] output) or raw trajectory records
      (`prompt_ids`, `trajectory`), which are packed here with the config's noise schedule.
    - Without a `data_collator`, a [`JacobiForcingCollator`] is built from the config, the tokenizer and the model
      (its `attn_implementation` picks the mask format: a float mask for eager, a boolean one for sdpa, a
      `BlockMask` for flex attention).
    - Every record is checked before training: block size against `args.block_size`, positions against the model's
      `max_position_embeddings`, packed length against `args.max_length`; errors name the record.
    - `ar_loss` and `consistency_loss` are logged beside `loss` (with an `eval_` prefix in evaluation).
    - `save_model`, checkpoints and `push_to_hub` write a model card (block size, noise schedule, data, measured
      TPF or "not measured").

    Args:
        model (`str`, `PreTrainedModel` or `PeftModel`): the model to train, or its name/path.
        args ([`JacobiForcingConfig`], *optional*): training configuration.
        data_collator (*optional*): defaults to a [`JacobiForcingCollator`].
        train_dataset, eval_dataset (`datasets.Dataset`, ...): packed or raw trajectory records.
        processing_class (`PreTrainedTokenizerBase`, *optional*): tokenizer; its pad token pads, its EOS ends the
            clean continuation. Without a pad token, the EOS token is used (as in `SFTTrainer`).
        peft_config (`peft.PeftConfig`, *optional*): e.g. a `LoraConfig`, to train an adapter.
        callbacks, optimizers, optimizer_cls_and_kwargs: as in [`~transformers.Trainer`].
    """

    _tag_names: ClassVar[list[str]] = ["trl", "hf_jacobi", "jacobi-forcing"]
    _name = "Jacobi Forcing"
    _paper: ClassVar[dict[str, str]] = {
        "title": "Fast and Accurate Causal Parallel Decoding using Jacobi Forcing",
        "id": "2512.14681",
        "citation": _CITATION,
    }
    # `compute_loss` returns a per-micro-batch mean; `Trainer` divides it by the gradient accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: str | PreTrainedModel,
        args: JacobiForcingConfig | None = None,
        data_collator=None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | dict[str, Dataset] | None = None,
        processing_class: PreTrainedTokenizerBase | ProcessorMixin | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple = (None, None),
        optimizer_cls_and_kwargs: tuple | None = None,
        peft_config=None,
        ref_model: PreTrainedModel | None = None,
    ):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = JacobiForcingConfig(f"{(name or 'model').rstrip('/').split('/')[-1]}-JacobiForcing")
        elif not isinstance(args, JacobiForcingConfig):
            raise TypeError(
                f"`args` must be a JacobiForcingConfig, got {type(args).__name__}. Its defaults "
                "(remove_unused_columns=False, skip_prepare_dataset=True, max_length=None) are needed here."
            )
        if args.ar_target == "soft" and ref_model is None and peft_config is None and not hasattr(model, "disable_adapter"):
            # Copied before `SFTTrainer.__init__` patches the model's `forward`
            if isinstance(model, str):
                from transformers import AutoModelForCausalLM

                ref_model = AutoModelForCausalLM.from_pretrained(model, **(args.model_init_kwargs or {}))
            else:
                ref_model = copy_model(model)
            ref_model.requires_grad_(False)
        eos = getattr(processing_class, "eos_token_id", None)
        train_dataset = self._pack_if_raw(train_dataset, args, eos)
        if isinstance(eval_dataset, (dict, DatasetDict)):
            eval_dataset = {key: self._pack_if_raw(ds, args, eos) for key, ds in eval_dataset.items()}
        else:
            eval_dataset = self._pack_if_raw(eval_dataset, args, eos)

        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
            optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
            peft_config=peft_config,
        )

        # The soft AR target's reference: the given model or the frozen copy made above; None with PEFT, whose model
        # with the adapter switched off is the reference
        if ref_model is not None and args.ar_target != "soft":
            raise ValueError("`ref_model` is only used with `ar_target='soft'`; set it or drop the reference model.")
        self.ref_model = None if ref_model is None else self.accelerator.prepare_model(ref_model.eval(), evaluation_mode=True)

        text_config = self.model.config.get_text_config()
        max_positions = getattr(text_config, "max_position_embeddings", None)
        datasets = {"train": self.train_dataset}
        if isinstance(self.eval_dataset, dict):
            datasets.update(self.eval_dataset)
        elif self.eval_dataset is not None:
            datasets["eval"] = self.eval_dataset
        self.jacobi_block_size = args.block_size
        for dataset in datasets.values():
            if isinstance(dataset, Dataset):
                n = validate_packed_dataset(
                    dataset, self.jacobi_block_size, max_positions, args.max_length,
                    vocab_size=self.model.get_input_embeddings().num_embeddings,
                )
                self.jacobi_block_size = self.jacobi_block_size or n

        if data_collator is None:
            # Built after `SFTTrainer.__init__`, which loads the model and gives the tokenizer a pad token
            attn_implementation = self.model.config._attn_implementation
            self.data_collator = JacobiForcingCollator(
                pad_token_id=self._tokenizer.pad_token_id,
                eos_token_id=self._tokenizer.eos_token_id,
                block_size=args.block_size,
                mask_context=args.mask_context,
                attn_implementation=attn_implementation,
                mask_dtype=self.model.dtype if self.model.dtype.is_floating_point else torch.float32,
                device=self.args.device if attn_implementation == "flex_attention" else "cpu",
                train_on_prompt=args.ar_loss_on_prompt,
                consistency_horizon=args.consistency_horizon,
                max_length=args.max_length,
                max_positions=max_positions,
            )
            if attn_implementation == "flex_attention" and args.dataloader_num_workers > 0:
                raise ValueError(
                    "With flex attention the collator builds the BlockMask on the model's device, which DataLoader "
                    "workers cannot do: set `dataloader_num_workers=0`."
                )

    @staticmethod
    def _pack_if_raw(dataset, args: JacobiForcingConfig, eos_token_id):
        """Pack raw trajectory records with the config's noise schedule; leave packed data as is.

        Only a `datasets.Dataset` is packed here; streaming data must be packed by the caller.
        """
        if not isinstance(dataset, Dataset):
            return dataset
        columns = dataset.column_names
        if "trajectory" not in columns or "noisy_blocks" in columns:
            return dataset  # packed already (interleaved or state layout)
        return pack_trajectories(
            dataset,
            block_size=args.block_size,
            strategy=args.noise_schedule,
            window=args.noise_window,
            min_ratio=args.min_noise_ratio,
            max_ratio=args.max_noise_ratio,
            seed=args.seed,
            max_blocks=args.max_blocks,
            eos_token_id=eos_token_id,
            trim_loops=args.trim_loops,
        )

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        # A dataset passed here directly may be raw trajectory records: pack them like the ones given at init
        eos = self._tokenizer.eos_token_id
        if isinstance(eval_dataset, (dict, DatasetDict)):
            eval_dataset = {key: self._pack_if_raw(ds, self.args, eos) for key, ds in eval_dataset.items()}
        elif eval_dataset is not None and not isinstance(eval_dataset, str):
            eval_dataset = self._pack_if_raw(eval_dataset, self.args, eos)
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """One forward over the packed batch; `args.ar_loss_weight * AR + consistency`.

        `num_items_in_batch` is unused: both losses are per-micro-batch means (see `loss_is_scaled_for_ga`).
        """
        mode = "train" if self.model.training else "eval"
        outputs = model(**{key: inputs[key] for key in _MODEL_INPUTS}, use_cache=False)
        logits = outputs.logits  # [B, S, V]

        ar = ar_loss(logits, inputs["shift_labels"])
        metrics = {"ar_loss": ar}
        if self.args.ar_target == "soft":
            metrics["ar_kl"] = distillation_loss(logits, self._reference_logits(model, inputs), inputs["shift_labels"])
        rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
        noisy_logits = logits[rows, inputs["noisy_index"]]  # [B, L, V]
        num_blocks = inputs["num_blocks"] if self.args.consistency_normalization == "block" else None
        if self.args.consistency_target == "hard":
            labels = inputs["shift_labels"][rows, inputs["clean_index"]]  # [B, L]: the clean next tokens
            consistency = hard_consistency_loss(noisy_logits, labels, inputs["consistency_mask"], num_blocks)
        else:
            clean_logits = logits[rows, inputs["clean_index"]]  # [B, L, V], detached inside
            consistency = consistency_loss(noisy_logits, clean_logits, inputs["consistency_mask"],
                                           self.args.consistency_temperature, num_blocks)
        metrics["consistency_loss"] = consistency
        loss = self.args.ar_loss_weight * metrics.get("ar_kl", ar) + self.args.consistency_loss_weight * consistency

        # `gather` (not `gather_for_metrics`, which may drop the last batch's duplicates along dim 0) of scalars
        for name, value in metrics.items():
            self._metrics[mode][name].append(self.accelerator.gather(value.detach()[None]).mean().item())
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def _reference_logits(self, model, inputs) -> torch.Tensor:
        """The reference's logits up to the last position the AR loss counts. The packed masks let no position attend to
        a later one, so where the 4D mask shows that, the counted prefix (the clean part of the state layout) is
        forwarded alone, exactly."""
        counted = (inputs["shift_labels"] != IGNORE_INDEX).any(0).nonzero()
        length = int(counted.max()) + 1 if len(counted) else 1
        kwargs = {key: inputs[key] for key in _MODEL_INPUTS}
        mask = kwargs["attention_mask"]
        if isinstance(mask, torch.Tensor) and mask.dim() == 4:
            later = mask[:, :, :length, length:]
            if not (later.any() if later.dtype == torch.bool else (later == 0).any()):
                kwargs = {"input_ids": kwargs["input_ids"][:, :length], "attention_mask": mask[:, :, :length, :length],
                          "position_ids": kwargs["position_ids"][:, :length]}
        if self.ref_model is not None:
            logits = self.ref_model(**kwargs, use_cache=False).logits
        else:
            with self.accelerator.unwrap_model(model).disable_adapter():
                logits = model(**kwargs, use_cache=False).logits
        return logits[:, :length]

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys: list[str] | None = None):
        # Only the loss: gathering [B, S, V] logits of packed sequences across eval batches would be large and
        # of little use (they interleave noisy and clean blocks)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save like `Trainer.save_model`, and write the model card next to the weights."""
        super().save_model(output_dir, _internal_call=_internal_call)
        self.create_model_card(output_dir=output_dir or self.args.output_dir)

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset_name: str | None = None,
        tags: str | list[str] | None = None,
        output_dir: str | None = None,
        **kwargs,
    ) -> None:
        """Write `README.md` into `output_dir`: TRL's card machinery with the Jacobi fields added.

        TRL's `create_model_card` (fed by `_name`, `_paper` and `_tag_names`) gives the card metadata (its tags,
        tracking links) and the citations; `hf_jacobi/model_cards/jacobi_forcing_template.md` gives the body: the
        Jacobi quick start, the measured TPF and the Jacobi Forcing settings. Reports only what is known: the packing
        parameters recorded on the training data (or "not recorded"), and `args.measured_tpf` (or "not measured").
        Extra keyword arguments (from `push_to_hub`) are ignored.
        """
        if not self.is_world_process_zero():
            return
        output_dir = output_dir or self.args.output_dir
        trl_card = self._trl_model_card(model_name, dataset_name, tags)
        if model_name is None:
            model_name = (self.args.hub_model_id or os.path.abspath(output_dir)).rstrip("/").split("/")[-1]
        base_model = self.model.config._name_or_path
        # A Hub id ("org/name"), not a local directory: only those get a link and card metadata
        hub_like = re.fullmatch(r"[\w.-]+(/[\w.-]+)?", base_model or "") is not None
        base_model_is_hub = hub_like and not os.path.isdir(base_model)

        train = self.train_dataset
        if dataset_name is None:
            dataset_name = getattr(getattr(train, "info", None), "dataset_name", None)
        try:
            dataset_size = f"{len(train):,}"
        except TypeError:
            dataset_size = "not recorded (streaming dataset)"
        info = packing_info(train) or {}
        if info.get("min_ratio") is not None:
            noise_range = f"{info['min_ratio']} to {info['max_ratio']}"
        else:
            noise_range = "not recorded"
        noise_window = info.get("window")
        if noise_window is None:
            noise_window = "not applicable" if info.get("strategy") == "random" else "not recorded"
        tags = {tags} if isinstance(tags, str) else set(tags or [])
        tags.update(self._tag_names)
        card_data = trl_card.data
        card_data.base_model = base_model if base_model_is_hub else None
        card_data.pipeline_tag = "text-generation"
        card_data.tags = sorted(set(card_data.tags or []) | tags)
        template = resources.files("hf_jacobi").joinpath("model_cards/jacobi_forcing_template.md")
        tpf = self.args.measured_tpf
        card = ModelCard.from_template(
            card_data,
            template_str=template.read_text(encoding="utf-8"),
            model_name=model_name,
            model_id=self.args.hub_model_id or model_name,
            base_model=base_model,
            base_model_is_hub=base_model_is_hub,
            dataset_name=dataset_name or "not recorded",
            dataset_size=dataset_size,
            # States cut to a consistency horizon are shorter than the decoding block they come from
            block_size=info["block_size"] if info.get("horizon") else
            self.jacobi_block_size if self.jacobi_block_size is not None else "not recorded",
            consistency_horizon=self.args.consistency_horizon or "none (every position after the first wrong token)",
            noise_strategy=info.get("strategy", "not recorded"),
            noise_window=noise_window,
            noise_range=noise_range,
            mask_context=self.args.mask_context,
            ar_loss_weight=self.args.ar_loss_weight,
            ar_target=("soft (KL from a frozen reference model)" if self.args.ar_target == "soft"
                       else "hard (cross-entropy against the clean tokens)"),
            consistency_temperature=self.args.consistency_temperature,
            learning_rate=self.args.learning_rate,
            global_step=self.state.global_step,
            measured_tpf="not measured" if tpf is None else f"{tpf:.2f}",
            filler_token_id=gated_filler(self.model),
            citations=_section(trl_card.text, "## Citations"),
            hf_jacobi_version=_version("hf_jacobi"),
            trl_version=_version("trl"),
            transformers_version=_version("transformers"),
            pytorch_version=_version("torch"),
            datasets_version=_version("datasets"),
        )
        os.makedirs(output_dir, exist_ok=True)
        card.save(os.path.join(output_dir, "README.md"))

    def _trl_model_card(self, model_name, dataset_name, tags) -> ModelCard:
        """TRL's own card for this run. TRL writes it to `args.output_dir`; what was there before is put back."""
        path = Path(self.args.output_dir) / "README.md"
        previous = path.read_text(encoding="utf-8") if path.exists() else None
        os.makedirs(self.args.output_dir, exist_ok=True)
        super().create_model_card(model_name=model_name, dataset_name=dataset_name, tags=tags)
        card = ModelCard.load(path)
        if previous is None:
            path.unlink()
        else:
            path.write_text(previous, encoding="utf-8")
        return card


def _section(text: str, heading: str) -> str:
    """The body of the markdown section `heading` (up to the next heading of the same level), or ''."""
    start = text.find(heading + "\n")
    if start < 0:
        return ""
    body = text[start + len(heading) + 1 :]
    level = heading.split(" ")[0]
    end = re.search(rf"^{level} ", body, flags=re.MULTILINE)
    return (body if end is None else body[: end.start()]).strip()

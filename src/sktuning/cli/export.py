"""`sktune export`: an adapter in PEFT's format, or an SK-Prompt's vectors for vLLM's prompt_embeds."""

from __future__ import annotations

import argparse

FORMATS = ("peft", "vllm-prompt-embeds")  # sktuning.sharing.export.FORMATS, named here so --help loads no torch


def add_parser(sub) -> None:
    export = sub.add_parser("export", help="write an adapter in PEFT's format (or vLLM prompt embeddings)",
                            description="peft: a PEFT prefix-tuning (SK-Prefix) or prompt-tuning (SK-Prompt) "
                                        "adapter that PeftModel.from_pretrained loads on the same backbone, with the "
                                        "task head beside it (sk_head.safetensors; sktuning.sharing.export.attach_head). "
                                        "vllm-prompt-embeds: an SK-Prompt's output vectors for vLLM's prompt_embeds.")
    export.add_argument("--adapter", required=True, help="the adapter folder (DIR/adapter of sktune train)")
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("--output", required=True, help="the folder to write")
    export.add_argument("--model", help="the backbone (default: the one the adapter records)")
    export.add_argument("--trust-remote-code", action="store_true")
    export.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sktuning.cli.common import load_adapter, quiet_libraries
    from sktuning.sharing.export import export_peft, export_prompt_embeds

    quiet_libraries()
    model, _, _ = load_adapter(args.adapter, args.model, args.trust_remote_code, device="cpu")
    out = (export_peft if args.format == "peft" else export_prompt_embeds)(model, args.output)
    print(f"{args.format} export of {args.adapter} in {out}")
    return 0

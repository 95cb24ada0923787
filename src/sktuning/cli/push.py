"""`sktune push`: upload a trained adapter to the Hugging Face Hub with a generated model card."""

from __future__ import annotations

from sktuning.core.errors import UsageError

import argparse


def add_parser(sub) -> None:
    push = sub.add_parser("push", help="upload an adapter to the Hugging Face Hub",
                          description="Upload DIR/adapter (config and weights, never the backbone) with a model card "
                                      "made from its config and the run's metrics.json; --dry-run writes the folder "
                                      "that would be sent instead.")
    push.add_argument("--adapter", required=True, help="the adapter folder (DIR/adapter of sktune train)")
    push.add_argument("--repo-id", required=True, help="user/name on the Hub (created if new)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--token", help="a Hub token (default: the one `hf auth login` stored)")
    push.add_argument("--dry-run", metavar="FOLDER", help="write what would be uploaded to FOLDER; send nothing")
    push.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sktuning.sharing.hub import push_to_hub, stage_upload

    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        raise UsageError(f"--repo-id {args.repo_id!r}: give it as user/name.")
    if args.dry_run:
        print(f"would upload {stage_upload(args.adapter, args.dry_run, args.repo_id)} to {args.repo_id}")
        return 0
    print(push_to_hub(args.adapter, args.repo_id, token=args.token, private=args.private))
    return 0

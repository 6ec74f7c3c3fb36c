"""dcim pue: train and evaluate the PUE model from the store."""

from __future__ import annotations

import argparse
import time

from dcim.cli.options import add_config_option, config_from

NAME = "pue"
HELP = "train or evaluate the PUE model (scikit-learn) from the store"
DESCRIPTION = (
    "train: read facility and cooling history from the store (5-min or hourly means), fit a gradient-"
    "boosting regressor of PUE on IT load, cooling set points, outdoor temperature/humidity and time, "
    "score it on a time-ordered hold-out (the last month, or the last 20 %), and save it with its "
    "feature list, training window and scores to [optimizer] model_path. "
    "evaluate: print the saved model's window and scores, and its scores on data newer than its window.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument("action", choices=["train", "evaluate"])
    parser.add_argument("--days", type=float, default=90.0, metavar="D", help="history to train on (default 90)")
    parser.add_argument("--every", type=float, default=300.0, metavar="S",
                        help="bucket size in seconds (default 300; 3600 for hourly)")
    parser.add_argument("--model", metavar="FILE", default=None, help="model file (default [optimizer] model_path)")


def run(args: argparse.Namespace) -> int:
    from dcim.store import open_store
    from optimizer.features import build_frame, utc_iso
    from optimizer.pue_model import evaluate, load_model, train

    cfg = config_from(args)
    path = args.model or cfg.optimizer.model_path
    now = time.time_ns()
    with open_store(cfg, readonly=args.action == "evaluate") as store:
        if args.action == "train":
            frame = build_frame(store, now - int(args.days * 86400e9), now, every_s=args.every,
                                tz=cfg.site.timezone, site=cfg.site.name)
            try:
                model = train(frame)
            except ValueError as exc:
                print(f"error: {exc}")
                return 1
            model.save(path)
            print(f"saved {path}")
            print("\n".join(model.describe()))
            return 0
        saved = load_model(path)
        if saved is None:
            print(f"error: no PUE model at {path} (run 'dcim pue train')")
            return 1
        print("\n".join(saved.describe()))
        frame = build_frame(store, saved.window_ns[1], now, every_s=args.every, tz=cfg.site.timezone,
                            site=cfg.site.name)
        scores = evaluate(saved, frame)
        if scores:
            print(f"newer data {utc_iso(saved.window_ns[1])} .. {utc_iso(now)} ({len(frame)} rows): "
                  f"MAE {scores['mae']:.4f}, MAPE {100 * scores['mape']:.3f} %")
        else:
            print("no data newer than the training window")
    return 0

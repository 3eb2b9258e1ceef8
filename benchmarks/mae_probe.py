"""What a masked autoencoder's encoder has learnt after a fixed CPU budget: linear-probe and k-NN accuracy of its
frozen features, against the same encoder at random initialisation and against raw pixels.

The budget is a number of training steps (so that a busy machine changes the time, not the result). CIFAR-10
(train file only): 45,000 images train the MAE and the probes, the other 5,000 (a seeded split) are the test;
MNIST: its 60,000 train images, its 10,000 test. Probes: standardised features then multinomial logistic
regression (the linear-evaluation protocol: BatchNorm without affine, then a linear layer, fit to convergence),
and 5-nearest-neighbour (Euclidean) accuracy; both with aekit.metrics. One recipe, chosen before any run:
AdamW lr 1e-3, betas (0.9, 0.95), weight decay 0.05 (not on biases, norms or tokens), 5 % warm-up then cosine,
batch 64, norm_pix_loss, mask ratio 0.75; ViT width 192, depth 6, 3 heads, patch 4; decoder 2 x 128.

    python benchmarks/mae_probe.py --data cifar10 --steps 3000 --json cifar.json
    python benchmarks/mae_probe.py --data cifar10 --steps 1000 --masker block --probe-train 10000 --no-baselines

``--model spark``: SparK's CNN (width 32, stages from the image size, mask ratio 0.6) in place of the ViT, the rest
of the recipe the same. ``--save DIR`` keeps the trained model; ``--teacher DIR`` trains the MAE with that model as
a frozen teacher (``--teacher-mode mimic``: MR-MAE, ``distill``: DMAE).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def features(model, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model.embed(x[i : i + batch]) for i in range(0, len(x), batch)])


def probes(train_z, train_y, test_z, test_y) -> dict[str, float]:
    from aekit.metrics import knn_accuracy, linear_probe_accuracy

    t = time.perf_counter()
    linear = linear_probe_accuracy(train_z, train_y, test_z, test_y)
    knn = knn_accuracy(train_z, train_y, test_z, test_y)
    return {"linear_probe_acc": linear, "knn_acc": knn, "probe_s": round(time.perf_counter() - t, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="cifar10", choices=["cifar10", "mnist"])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--masker", default="random")
    parser.add_argument("--model", default="mae", choices=["mae", "spark"])
    parser.add_argument("--teacher", default="", help="an aekit ViT checkpoint folder: its features are a target")
    parser.add_argument("--teacher-mode", default="mimic", choices=["mimic", "distill"])
    parser.add_argument("--teacher-layer", type=int, default=0)
    parser.add_argument("--student-layer", type=int, default=0)
    parser.add_argument("--save", default="", help="save the trained model in this folder")
    parser.add_argument("--probe-train", type=int, default=0, help="probe on this many train images (0: all)")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    import aekit
    from aekit.data import load_data

    torch.set_num_threads(args.threads)
    fractions = {"val_fraction": 0.02, "test_fraction": 0.1} if args.data == "cifar10" else {}
    splits = load_data(args.data, **fractions)
    model_settings = dict(patch_size=4, width=192, depth=6, heads=3, decoder_width=128, decoder_depth=2,
                          decoder_heads=4, mask_ratio=0.75, norm_pix_loss=True, masker=args.masker)
    if args.model == "spark":
        model_settings = dict(width=32, mask_ratio=0.6, norm_pix_loss=True, masker=args.masker)
    if args.teacher:
        model_settings.update(teacher=args.teacher, teacher_mode=args.teacher_mode, teacher_layer=args.teacher_layer,
                              student_layer=args.student_layer)
    train_settings = dict(steps=args.steps, batch_size=64, lr=1e-3, weight_decay=0.05, no_decay_1d=True,
                          lr_warmup_steps=max(1, args.steps // 20), lr_schedule="cosine",
                          optimizers={"model": {"betas": [0.9, 0.95]}}, threads=args.threads, progress=False,
                          seed=0, figures=False)
    t0 = time.perf_counter()
    result = aekit.train(args.model, data=splits, out=None, evaluate=False, **model_settings, **train_settings)
    train_s = time.perf_counter() - t0

    # probe data: train (+ val for CIFAR-10: the 45,000) and test
    def arrays(ds):
        return ds.inputs(slice(0, len(ds))), ds.labels(slice(0, len(ds)))

    parts = [arrays(splits.train)] + ([arrays(splits.val)] if args.data == "cifar10" else [])
    x_train = torch.cat([p[0] for p in parts])
    y_train = torch.cat([p[1] for p in parts])
    x_test, y_test = arrays(splits.test)
    if args.probe_train:
        x_train, y_train = x_train[: args.probe_train], y_train[: args.probe_train]
    if args.save:
        aekit.save_model(result.model, args.save)
    report = {"data": args.data, "model": args.model, "masker": args.masker, "teacher": args.teacher,
              "teacher_mode": args.teacher_mode if args.teacher else "", "steps": args.steps, "batch": 64,
              "train_s": round(train_s),
              "train_images": len(x_train), "test_images": len(x_test), "threads": args.threads}
    model = result.model
    report["mae"] = probes(features(model, x_train), y_train, features(model, x_test), y_test)
    print(json.dumps(report), flush=True)
    if not args.no_baselines:
        torch.manual_seed(0)
        plain = {k: v for k, v in model_settings.items() if not k.startswith(("teacher", "student"))}
        random_init = aekit.build_model(args.model, data_shape=tuple(splits.shape), **plain)
        report["random_init"] = probes(features(random_init, x_train), y_train, features(random_init, x_test),
                                       y_test)
        print(json.dumps(report), flush=True)
        report["raw_pixels"] = probes(x_train.flatten(1), y_train, x_test.flatten(1), y_test)
    print(json.dumps(report), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    np.set_printoptions()


if __name__ == "__main__":
    main()

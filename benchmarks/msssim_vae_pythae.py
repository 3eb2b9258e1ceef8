"""aekit's msssim-vae against Pythae's MSSSIM_VAE on MNIST: same MLP, initial weights, data, optimiser, budget and
seed; the test loss and the training time side by side.

Network (both libraries), latent 16:

    encoder  x [784] -> Linear 400 -> ReLU -> (mu [16], log sigma^2 [16])
    decoder  z [16]  -> Linear 400 -> ReLU -> Linear 784 -> sigmoid -> x_hat [1, 28, 28]

Loss (both): 1 - MS-SSIM(x, x_hat) + beta KL(q(z|x) || p(z)), beta = ``--beta`` (1, Pythae's default), window 11;
Adam, lr 1e-3, batch 64, constant lr, ``--epochs`` over a seeded ``--train-examples`` of MNIST's training images.
Pythae's networks are initialised with the seed and their weights copied into the aekit model, so both start from
the same point.
Each trained model is scored the same way on ``--test-examples`` test images, as an aekit model holding its weights
(a Pythae model's copy checked to reconstruct as Pythae's does): 1 - MS-SSIM of the reconstruction from the
posterior mean per example (aekit's form, each image its own index) and Pythae's own batch value, and the KL.
Timings are the training batches' time inside each library's loop (validation, evaluation excluded), one thread,
one run each, in one process, on a shared machine under other users' load.

    TQDM_DISABLE=1 .venv-bench/bin/python benchmarks/msssim_vae_pythae.py --epochs 2 --train-examples 10000 \\
        --beta 1 --out benchmarks/results/msssim_vae_pythae.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from _common import aekit_source, machine
from torch import nn
from vae_binarized_mnist import aekit_state_from_pythae, nll_subset, pythae_epoch_timer

import aekit
from aekit.data.base import Splits
from aekit.nn.perceptual import ms_ssim

HIDDEN, LATENT_DIM, BATCH_SIZE, LR = 400, 16, 64, 1e-3


class SigmoidDecoder(nn.Module):
    """The decoder both libraries train: ``z [N, 16] -> x_hat [N, 1, 28, 28]`` in (0, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT_DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 784))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z)).view(-1, 1, 28, 28)  # [N, 784] -> [N, 1, 28, 28]


def aekit_model(beta: float, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    model = aekit.build_model("msssim-vae", data_shape=(1, 28, 28), hidden=(HIDDEN,), latent_dim=LATENT_DIM,
                              beta=beta, decoder=SigmoidDecoder())
    if state is not None:
        model.load_state_dict(aekit_state_from_pythae(state, ["encoder.fc1"], "encoder.embedding", "encoder.log_var",
                                                      ["decoder.fc1", "decoder.fc2"]))
    return model


def pythae_model(seed: int, beta: float) -> nn.Module:
    from pythae.models import MSSSIM_VAE, MSSSIM_VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(784, HIDDEN)
            self.embedding, self.log_var = nn.Linear(HIDDEN, LATENT_DIM), nn.Linear(HIDDEN, LATENT_DIM)

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = torch.relu(self.fc1(x.reshape(x.shape[0], -1)))  # [B, 784] -> [B, 400]
            return ModelOutput(embedding=self.embedding(h), log_covariance=self.log_var(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(LATENT_DIM, HIDDEN), nn.Linear(HIDDEN, 784)

        def forward(self, z: torch.Tensor) -> ModelOutput:
            x_hat = torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))
            return ModelOutput(reconstruction=x_hat.reshape(z.shape[0], 1, 28, 28))

    torch.manual_seed(seed)
    config = MSSSIM_VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT_DIM, beta=beta, window_size=11)
    return MSSSIM_VAE(model_config=config, encoder=Encoder(), decoder=Decoder())


def train_pythae(model: nn.Module, train_x: torch.Tensor, epochs: int, seed: int, workdir: Path) -> float:
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    config = BaseTrainerConfig(output_dir=str(workdir / "pythae"), per_device_train_batch_size=BATCH_SIZE,
                               num_epochs=epochs, learning_rate=LR, optimizer_cls="Adam", steps_saving=None,
                               steps_predict=None, no_cuda=True, seed=seed)
    timer = pythae_epoch_timer()
    from pythae.data.preprocessors import DataProcessor

    dataset = DataProcessor().to_dataset(train_x)
    BaseTrainer(model=model, train_dataset=dataset, training_config=config, callbacks=[timer]).train()
    return timer.loop_s


@torch.no_grad()
def score(model: nn.Module, test_x: torch.Tensor, beta: float) -> dict[str, float]:
    """1 - MS-SSIM per example (mean) and Pythae's batch value of the posterior mean's reconstruction, the KL."""
    from pythae.models.msssim_vae.msssim_vae_utils import MSSSIM

    model.eval()
    latent = model.encode(test_x)
    x_hat = model.likelihood.mean(model.decode(latent.mean))
    kl = model(test_x, eps=torch.zeros(1, *latent.mean.shape)).terms["kl"]
    recon = 1 - ms_ssim(test_x, x_hat)
    pythae_batch = float(MSSSIM(11)(x_hat, test_x))
    return {"recon_1_minus_msssim": float(recon.mean()), "pythae_batch_1_minus_msssim": pythae_batch,
            "kl": float(kl.mean()), "loss": float(recon.mean() + beta * kl.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-examples", type=int, default=10_000)
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--root", default=None, help="the data folder (default: AEKIT_DATA)")
    parser.add_argument("--out", default="benchmarks/results/msssim_vae_pythae.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    splits = aekit.load_data("mnist", root=args.root)
    train = nll_subset(splits.train, args.train_examples, args.seed)
    test_x = nll_subset(splits.test, args.test_examples, args.seed).inputs()
    pythae = pythae_model(args.seed, args.beta)
    init = {k: v.clone() for k, v in pythae.state_dict().items()}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        loop_s = train_pythae(pythae, train.inputs(), args.epochs, args.seed, Path(tmp))
        pythae_wall = time.perf_counter() - start
        trained = pythae.eval()
        as_aekit = aekit_model(args.beta, trained.state_dict()).eval()
        with torch.no_grad():  # the copy reconstructs as Pythae's model does
            want = trained.decoder(trained.encoder(test_x[:8]).embedding).reconstruction
            assert torch.allclose(as_aekit.reconstruct(test_x[:8]), want, atol=1e-6)
        rows["pythae"] = {**score(as_aekit, test_x, args.beta), "loop_s": round(loop_s, 2),
                          "wall_s": round(pythae_wall, 2)}

        model = aekit_model(args.beta, init).train()
        start = time.perf_counter()
        run = aekit.train(model, data=Splits(train, splits.val.subset(torch.arange(0)), splits.test),
                          out=Path(tmp) / "aekit", evaluate=False, epochs=args.epochs, batch_size=BATCH_SIZE, lr=LR,
                          lr_schedule="constant", optimizer="adam", seed=args.seed, accelerator="cpu",
                          progress=False, figures=False, threads=args.threads)
        aekit_wall = time.perf_counter() - start
        loop_s = float(run.metrics["train/wall_time_s"])
        rows["aekit"] = {**score(run.model, test_x, args.beta), "loop_s": round(loop_s, 2),
                         "wall_s": round(aekit_wall, 2)}
    result = {"benchmark": "msssim_vae_pythae", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "settings": vars(args), "pythae": importlib.metadata.version("pythae"), "machine": machine(),
              "aekit": aekit_source(), "rows": rows,
              "loop_ratio_aekit_over_pythae": round(rows["aekit"]["loop_s"] / rows["pythae"]["loop_s"], 3)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

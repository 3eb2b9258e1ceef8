"""Draw docs/maskers.png: one row of masks per registered masker on a 14 x 14 patch grid at ratio 0.75
(white = visible, black = hidden), the same noise for every masker.

    python docs/maskers.py
"""

from pathlib import Path

import torch

from aekit.nn.maskers import make_masker
from aekit.parts import part_names
from aekit.report import plot_image_rows


def main() -> None:
    torch.manual_seed(0)
    noise = torch.rand(8, 196)
    rows = {}
    for name in part_names("maskers"):
        mask = make_masker(name, 0.75, {})(torch.zeros(8, 196, 1), (14, 14), noise).mask
        rows[name] = (1 - mask).view(8, 1, 14, 14)
    print(plot_image_rows(rows, Path(__file__).with_name("maskers.png"), title="masks at ratio 0.75 (white: visible)"))


if __name__ == "__main__":
    main()

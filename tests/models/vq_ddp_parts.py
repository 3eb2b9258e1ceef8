"""A VQ bottleneck that writes its codebook after every step, per rank, to $VQ_DIR (imported by name,
``imports=vq_ddp_parts``, so that DDP processes register it too)."""

import json
import os
from pathlib import Path

from aekit.nn.quantize.vq import VectorQuantizer
from aekit.parts import register_part


@register_part("bottlenecks", "vq-recorded", "vq that records its codebook per rank (tests)")
class RecordedVQ(VectorQuantizer):
    def after_optimizer_step(self, ctx) -> None:
        super().after_optimizer_step(ctx)
        book = self.codebooks[0]
        state = {"embed": book.embed.flatten().tolist(), "idle": book.idle.flatten().tolist(),
                 "rows": sum(len(out.latent.params["codes"].reshape(-1)) for out in ctx.outputs)}
        (Path(os.environ["VQ_DIR"]) / f"rank{ctx.rank}_step{ctx.step}.json").write_text(json.dumps(state))

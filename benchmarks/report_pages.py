"""Render the report pages of a VAE, an MAE, a VGAE, a detector and a comparison in headless Chromium and read
their headline numbers back from the rendered page.

    python benchmarks/report_pages.py --out runs/pages            # needs Chromium: apt-get install chromium

Each run is short (the pages, not the models, are under test). For every page the script asks Chromium for the
DOM after rendering (``--dump-dom``) and a screenshot (``PAGE.png`` beside the page), reads each headline row
(metric, shown value) and checks it against ``metrics.json`` as the report formats it; for the comparison, each
run's value of every compared metric. It prints one line per page and exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("report_pages: no Chromium on PATH; install it (Debian: apt-get install chromium)")


def render(page: Path) -> str:
    """The page's DOM after Chromium has rendered it; a screenshot of it is written beside it."""
    with tempfile.TemporaryDirectory() as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run([chromium(), *flags, "--dump-dom", page.resolve().as_uri()], capture_output=True,
                             text=True, timeout=120, check=True).stdout
        subprocess.run([chromium(), *flags, f"--screenshot={page.with_suffix('.png')}", "--window-size=1200,2400",
                        page.resolve().as_uri()], capture_output=True, timeout=120, check=True)
    return dom


def headline_rows(dom: str) -> dict[str, str]:
    """{metric: value as shown} of the rendered headline table."""
    table = dom.split("<h2>Headline</h2>", 1)[1].split("</table>", 1)[0] if "<h2>Headline</h2>" in dom else ""
    return {html.unescape(k): html.unescape(v)
            for k, v in re.findall(r'<tr><th>([^<]+)</th><td class="number">([^<]+)</td>', table)}


def check_page(kind: str, run_dir: Path, expected: tuple[str, ...]) -> bool:
    from aekit.report.html import _format_metric

    metrics = json.loads((run_dir / "metrics.json").read_text())
    shown = headline_rows(render(run_dir / "report.html"))
    wrong = [k for k in expected if k not in shown or shown[k] != _format_metric(metrics.get(k))]
    print(f"{kind:10s} {run_dir / 'report.html'}: headline " + ", ".join(f"{k}={v}" for k, v in shown.items())
          + (f"  MISMATCH {wrong}" if wrong else "  (matches metrics.json)"))
    return not wrong


def check_comparison(page: Path, runs: list[Path], keys: tuple[str, ...]) -> bool:
    from aekit.report.html import _format_metric

    dom = render(page)
    ok = True
    for key in keys:
        row = re.search(rf"<tr><td>{re.escape(key)}</td>(.*?)</tr>", dom, re.S)
        cells = [html.unescape(c) for c in re.findall(r'<td class="number[^"]*">([^<]+)</td>', row.group(1))] \
            if row else []
        wanted = [_format_metric(json.loads((r / "metrics.json").read_text()).get(key)) for r in runs]
        ok &= cells == wanted
        print(f"{'compare':10s} {page}: {key} shown {cells}, metrics.json {wanted}"
              + ("" if cells == wanted else "  MISMATCH"))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/pages", help="folder for the runs, pages and screenshots")
    args = parser.parse_args()
    import aekit
    from aekit.detect import detect
    from aekit.report.compare import write_comparison

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    aekit.train("vae", "digits", out / "vae", steps=300, latent_dim=4, nll_samples=200)
    aekit.train("vae", "digits", out / "vae-b", steps=300, latent_dim=8, nll_samples=200, evaluation="full")
    aekit.train("mae", "cifar10", out / "mae", steps=10, width=64, depth=2, heads=2, decoder_width=32,
                decoder_depth=1, decoder_heads=2, patch_size=4)
    aekit.train("vgae", "cora", out / "vgae", steps=50)
    detect("digits", "vae", out / "detect", normal_class=3, steps=200)
    compare = write_comparison([out / "vae", out / "vae-b"], out / "compare")
    ok = check_page("vae", out / "vae", ("test/nll", "test/elbo", "test/kl"))
    ok &= check_page("mae", out / "mae", ("test/masked_mse",))
    ok &= check_page("vgae", out / "vgae", ("test/auc", "test/ap"))
    ok &= check_page("detector", out / "detect", ("detect/roc_auc", "detect/average_precision"))
    ok &= check_comparison(compare, [out / "vae", out / "vae-b"], ("test/nll", "test/elbo", "test/kl"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

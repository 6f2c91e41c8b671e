"""k-shot adaptation curves on real laboratories -> docs/adaptation.json and docs/adaptation.png.

    python scripts/adaptation_curve.py ../shared/data/lisc ../shared/data/bionet [--model DIR] [--record]

Run with a model that never saw those laboratories (its card says which it saw).  ``--record``
also writes the curves of the laboratories the model never saw into its card
(``adaptation_curve``), where the *Adapt to your lab* page shows them as what to expect.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bloodcell_core.adaptation.adapt import home_images  # noqa: E402
from bloodcell_core.adaptation.kshot import DEFAULT_KS, curve_record, kshot_curve  # noqa: E402
from bloodcell_core.data.datasets import load_dataset  # noqa: E402
from bloodcell_core.data.subsets import seen_in_training  # noqa: E402
from bloodcell_core.inference.predictor import Predictor  # noqa: E402
from bloodcell_core.models.store import record_in_card  # noqa: E402
from bloodcell_core.progress import tqdm_progress  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def draw_curves(results: dict, out: Path) -> None:
    """A small line chart (PIL: no plotting dependency): accuracy on the rest vs k, per laboratory."""
    from PIL import Image, ImageDraw

    width, height, left, bottom, top, right = 720, 420, 70, 60, 30, 170
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    ks = results["ks"]

    def xy(k_index: int, value: float) -> tuple[float, float]:
        x = left + k_index * (width - left - right) / max(len(ks) - 1, 1)
        return x, top + (1 - (value - 0.4) / 0.6) * (height - top - bottom)  # 40%..100%

    for tick in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        _, y = xy(0, tick)
        pen.line([(left, y), (width - right, y)], fill=(225, 225, 225))
        pen.text((left - 40, y - 6), f"{tick:.0%}", fill="black")
    for i, k in enumerate(ks):
        x, _ = xy(i, 0.4)
        pen.text((x - 6, height - bottom + 8), str(k), fill="black")
    pen.text((left + 150, height - 25), "labelled cells per class (k)", fill="black")
    for n, (name, lab) in enumerate(results["laboratories"].items()):
        colour = COLOURS[n % len(COLOURS)]
        for series, dashed in (("adapted", False), ("parent", True)):
            points = [xy(i, lab["curve"][str(k)][series]["mean"]) for i, k in enumerate(ks)]
            for a, b in zip(points, points[1:]):
                pen.line([a, b], fill=colour if not dashed else tuple(c // 2 + 120 for c in colour), width=3)
            for x, y in points:
                pen.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        pen.text((width - right + 10, top + 40 * n), f"{name} adapted", fill=colour)
        pen.text((width - right + 10, top + 40 * n + 14), f"{name} unadapted", fill=tuple(c // 2 + 120 for c in colour))
    pen.text((left, 8), "Accuracy on the rest of the laboratory after adapting on k cells per class", fill="black")
    image.save(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="+")
    parser.add_argument("--model", default=None)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--merge", action="store_true",
                        help="add to docs/adaptation.json (e.g. a laboratory measured with another model that "
                             "never saw it) instead of starting it anew")
    parser.add_argument("--record", action="store_true",
                        help="write the curves of the laboratories the model never saw into its card")
    args = parser.parse_args()
    predictor = Predictor.load(args.model)
    home = home_images(predictor, tqdm_progress())
    results = {"ks": list(DEFAULT_KS), "laboratories": {}}
    recorded = {}
    if args.merge and (DOCS / "adaptation.json").exists():
        results = json.loads((DOCS / "adaptation.json").read_text())
    for path in args.data:
        dataset = load_dataset(path)
        curve = kshot_curve(predictor, dataset, draws=args.draws, home=home, progress=tqdm_progress())
        curve["seen_in_training"] = seen_in_training(predictor.card, dataset)
        curve["model"] = predictor.name
        if home is not None:
            curve["home_parent_accuracy"] = float((predictor.run_prepared(home[0])[0].argmax(1) == home[1]).mean())
        results["laboratories"][Path(path).name] = curve
        if not curve["seen_in_training"]:
            recorded[Path(path).name] = curve_record(curve)
        print(Path(path).name, {k: round(v["adapted"]["mean"], 3) for k, v in curve["curve"].items()}, file=sys.stderr)
    DOCS.mkdir(exist_ok=True)
    (DOCS / "adaptation.json").write_text(json.dumps(results, indent=2) + "\n")
    draw_curves(results, DOCS / "adaptation.png")
    print(f"wrote {DOCS / 'adaptation.json'} and {DOCS / 'adaptation.png'}", file=sys.stderr)
    if args.record:
        if not recorded:
            print("nothing recorded: the model trained on every laboratory given", file=sys.stderr)
            return 2
        card_path = record_in_card(args.model, "adaptation_curve", {"laboratories": recorded}) / "card.json"
        print(f"recorded {', '.join(recorded)} in {card_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dataset: decoding image files vs loading the cached tensor file (target: cache >= 20x faster)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from kernelfusion import config, data, store

from .common import table, timed


def run(images: int = 2000, size: int = 64, file_size: int = 256) -> list[dict]:
    """Files are written at `file_size` pixels (photos are larger than the training size)."""
    cfg = config.load(
        "default",
        {
            "data.image_size": size,
            "data.cat_count": images,
            "data.black_count": 10,
            "data.eval_per_group": 2,
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        drawn = data.make_synthetic(cfg, progress=False)["cat"].images[:images]
        folder = root / "photos"
        folder.mkdir()
        for index, picture in enumerate(drawn):
            photo = Image.fromarray(picture.permute(1, 2, 0).numpy()).resize((file_size,) * 2)
            photo.save(folder / f"{index}.jpg", quality=92)
        run_store = store.open(cfg, root / "runs")
        run_store.stage("bench", {}, lambda w: w.save_tensors("cat", {"images": drawn}))

        decode_s, _ = timed(lambda: data.read_class_folder(folder, size, progress=False), repeat=1)
        cached_s, _ = timed(lambda: run_store.load("bench").tensors("cat"), repeat=3)
    rows = [
        {
            "path": "decode JPEG files",
            "images": images,
            "seconds": decode_s,
            "images/s": images / decode_s,
        },
        {
            "path": "load cached tensors",
            "images": images,
            "seconds": cached_s,
            "images/s": images / cached_s,
        },
    ]
    table(
        f"dataset loading ({file_size}px JPEGs -> {size}px tensors; hashes checked); "
        f"cache is {decode_s / cached_s:.0f}x faster (target >= 20x)",
        rows,
    )
    return rows


if __name__ == "__main__":
    run()

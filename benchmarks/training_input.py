"""Training input: seconds per epoch of reading a transform output's train examples, side by side.

"per batch" is TF's ``make_batched_features_dataset`` (read ``READ_FILES`` files at a time, shuffle the serialized
records, batch, parse each batch of 128), which training used before; "rebatched" is
``pipelines.model.train.train_dataset`` (read and shuffle the same way, parse 1,024 records at a time, cut into
batches of 128). Both give the same batches, which is checked.

    .venv/bin/python benchmarks/training_input.py .artifacts/adult/runs/2026-01-28/transform   # after make demo
"""

from __future__ import annotations

import argparse
import time

import pipelines  # noqa: F401  (the environment settings, before TensorFlow loads)
from pipelines.core.outputs import TransformOutput
from pipelines.model.train import READ_FILES, train_dataset

BATCH, SEED, EPOCHS = 128, 42, 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("transform", help="a transform stage's output folder")
    parser.add_argument("--label", default="income")
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    transformed = TransformOutput(args.transform)
    output = tft.TFTransformOutput(str(transformed.tft_dir))
    files = sorted(str(p) for p in transformed.transformed_dir.glob("*.tfrecord"))
    per_batch = tf.data.experimental.make_batched_features_dataset(
        file_pattern=files,
        batch_size=BATCH,
        features=output.transformed_feature_spec(),
        label_key=args.label,
        num_epochs=1,
        shuffle=True,
        shuffle_seed=SEED,
        reader_num_threads=READ_FILES,
        parser_num_threads=tf.data.AUTOTUNE,
        sloppy_ordering=False,
        prefetch_buffer_size=tf.data.AUTOTUNE,
    )
    rebatched = train_dataset(transformed, output, args.label, BATCH, SEED)
    for (a, la), (b, lb) in zip(per_batch.take(20), rebatched.take(20), strict=True):
        assert np.array_equal(la, lb) and all(np.array_equal(a[k], b[k]) for k in a), "the batches differ"
    seconds = {}
    for name, dataset in (("per batch", per_batch), ("rebatched", rebatched)):
        runs = []
        for _ in range(EPOCHS):
            start = time.perf_counter()
            batches = sum(1 for _ in dataset)
            runs.append(time.perf_counter() - start)
        seconds[name] = min(runs)
        print(f"{name:>10}: {batches:,} batches of {BATCH}, {min(runs):.2f} s per epoch (best of {EPOCHS})")
    print(f"per batch / rebatched: {seconds['per batch'] / seconds['rebatched']:.1f}x")


if __name__ == "__main__":
    main()

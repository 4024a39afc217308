"""The TFX reference: a TFX 1.16 pipeline doing our pipeline's job on the same rows, for side-by-side figures.

ExampleGen (our run's own train and test rows, as CSV) -> StatisticsGen -> SchemaGen ->
ExampleValidator -> Transform -> Trainer -> Evaluator (AUC and accuracy overall and per slice of the config, with a
floor on AUC) -> Pusher, run by TFX's LocalDagRunner with Beam in process (one worker, as ours). The code of
Transform and Trainer is ``module.py``; what they compute comes from the spec that ``pipeline_scale.py`` writes from
our config, so both pipelines do the same work on the same rows, and their ROC AUCs are on the same test rows.

It runs in TFX's own venv (TFX 1.16 needs Python 3.10 and TF 2.16: ``make bench-scale`` creates ``.venv-tfx``):

    .venv-tfx/bin/python benchmarks/tfx_reference/pipeline.py SPEC.json WORKDIR

and prints one JSON line: each component's seconds (from ML Metadata) and the Evaluator's overall AUC.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow_model_analysis as tfma  # noqa: E402
from ml_metadata import metadata_store  # noqa: E402
from module import LABEL  # noqa: E402  (this folder is on the path when run as a script)
from tfx import v1 as tfx  # noqa: E402

MODULE = str(Path(__file__).with_name("module.py"))


def build(spec: dict, workdir: Path) -> tfx.dsl.Pipeline:
    """The components, wired."""
    splits = [tfx.proto.Input.Split(name=name, pattern=spec["splits"][name]) for name in ("train", "eval")]
    example_gen = tfx.components.CsvExampleGen(input_base=spec["input"], input_config=tfx.proto.Input(splits=splits))
    statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"], infer_feature_shape=False)
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"]
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema.outputs["schema"],
        module_file=MODULE,
        custom_config={"spec": spec},
    )
    batches = {name: -(-rows // spec["batch_size"]) for name, rows in spec["rows"].items()}
    trainer = tfx.components.Trainer(
        module_file=MODULE,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=batches["train"] * spec["epochs"]),
        eval_args=tfx.proto.EvalArgs(num_steps=batches["eval"]),
        custom_config={"spec": spec},
    )
    eval_config = tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=LABEL,
                preprocessing_function_names=["transform_features"],
            )
        ],
        slicing_specs=[tfma.SlicingSpec(), *(tfma.SlicingSpec(feature_keys=keys) for keys in spec["slices"])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="BinaryAccuracy"),
                    tfma.MetricConfig(
                        class_name="AUC",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": spec["auc_floor"]})
                        ),
                    ),
                ]
            )
        ],
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"], model=trainer.outputs["model"], eval_config=eval_config
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(workdir / "serving"))
        ),
    )
    components = [example_gen, statistics, schema, validator, transform, trainer, evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name="tfx-reference",
        pipeline_root=str(workdir / "root"),
        components=components,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(workdir / "metadata.db")
        ),
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    )


def component_seconds(workdir: Path) -> dict[str, float]:
    """Each component's run time, from its execution in ML Metadata."""
    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(workdir / "metadata.db"))
    store = metadata_store.MetadataStore(config)
    types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
    return {
        types[e.type_id]: (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000
        for e in sorted(store.get_executions(), key=lambda e: e.create_time_since_epoch)
    }


def overall_auc(workdir: Path) -> float | None:
    """The Evaluator's AUC over the whole eval split."""
    found = sorted((workdir / "root").glob("Evaluator/evaluation/*"))
    if not found:
        return None
    for key, metrics in tfma.load_eval_result(str(found[-1])).slicing_metrics:
        if key == ():
            return metrics[""][""]["auc"]["doubleValue"]
    return None


def main() -> None:
    spec_path, workdir = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_path.read_text())
    tfx.orchestration.LocalDagRunner().run(build(spec, workdir))
    print(json.dumps({"components": component_seconds(workdir), "auc": overall_auc(workdir)}))


if __name__ == "__main__":
    main()

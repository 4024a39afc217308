"""The preprocessing_fn built from the config, with one real Beam + TFT run on 400 Adult rows: each transform's
numbers, imputation in the analyzed data and through the exported graph, crosses, the model's inputs, and the
user's own preprocessing_fn by dotted path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ADULT_CONFIG
from pydantic import ValidationError

from pipelines.core.config import Config, ConfigError
from pipelines.core.outputs import TransformOutput
from pipelines.features.encoding import encode_examples, raw_feature_spec
from pipelines.features.transform import MISSING_TOKEN, analyze_and_transform, make_preprocessing_fn
from pipelines.model.train import build_model, model_inputs

FEATURES = {
    "age": {},  # the defaults: z-score, missing -> the mean
    "workclass": {},  # the defaults: a vocabulary with one OOV bucket, missing -> a token of its own
    "education_num": {"transform": "minmax", "buckets": 4, "impute": 10},
    "capital_gain": {"transform": "log"},
    "hours_per_week": {"transform": "bucketize", "buckets": 5},
    "native_country": {"top_k": 3, "num_oov_buckets": 2},
}
CROSS = "workclass_x_hours_per_week"
MISSING_AGE, MISSING_EDUCATION, MISSING_WORKCLASS = range(0, 20), range(20, 30), range(30, 40)
NOT_CALLABLE = 3


def config_with(features: dict[str, dict], **schema: object) -> Config:
    """The Adult config reduced to ``features`` (with their transform options, in place of Adult's) and ``schema``
    keys."""
    raw = yaml.safe_load(ADULT_CONFIG.read_text())
    own = [{k: v for k, v in f.items() if k != "buckets"} for f in raw["schema"]["features"]]
    kept = [{**f, **features[f["name"]]} for f in own if f["name"] in features]
    raw["schema"] = {**raw["schema"], "features": kept, **schema}
    raw.update(slices=[], protected_attributes=[], tags=[], expectations=None)
    raw["thresholds"]["fairness"].update(intersections=[], attributes={})
    return Config.model_validate(raw, context={"base_dir": ADULT_CONFIG.parent})


def log_age(inputs: dict) -> dict:
    """A user's preprocessing_fn (plain TensorFlow)."""
    import tensorflow as tf

    return {"age_log": tf.math.log1p(tf.sparse.to_dense(inputs["age"]))}


@pytest.fixture(scope="module")
def raw_rows(adult_frame):
    rows = adult_frame.head(400).copy()
    for name in ("age", "education_num", "capital_gain", "hours_per_week"):
        rows[name] = pd.to_numeric(rows[name]).astype(float)
    rows.loc[MISSING_AGE, "age"] = np.nan
    rows.loc[MISSING_EDUCATION, "education_num"] = np.nan
    rows.loc[MISSING_WORKCLASS, "workclass"] = None
    return rows


@pytest.fixture(scope="module")
def transformed(tmp_path_factory, raw_rows):
    """One TFT run; returns (config, TFTransformOutput, the transformed train examples as arrays)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    config = config_with(FEATURES, crosses=[{"features": ["workclass", "hours_per_week"], "hash_buckets": 7}])
    out = TransformOutput(tmp_path_factory.mktemp("preprocessing"))
    raw_rows[config.data_schema.columns].to_parquet(out.train_raw, index=False)
    analyze_and_transform(out, config)
    output = tft.TFTransformOutput(str(out.tft_dir))
    spec = output.transformed_feature_spec()
    files = [str(p) for p in out.transformed_dir.glob("*.tfrecord")]
    batch = next(iter(tf.data.TFRecordDataset(files).batch(1000).map(lambda x: tf.io.parse_example(x, spec))))
    return config, output, {k: v.numpy() for k, v in batch.items()}


def test_scaled_numbers_and_imputed_values_in_the_analyzed_data(transformed, raw_rows):
    _, _, values = transformed
    assert len(values["age"]) == len(raw_rows)
    # z-score (default): present ages have mean 0 and std 1, missing ones sit at the mean (0).
    present = values["age"][values["age"] != 0]
    assert abs(present.mean()) < 0.1 and present.std() == pytest.approx(1.0, abs=0.1)
    assert np.isclose(values["age"], 0.0).sum() >= len(MISSING_AGE)
    # minmax over the values present; a missing value is the configured constant 10, scaled the same way.
    education = raw_rows["education_num"].dropna()
    low, high = education.min(), education.max()
    assert values["education_num"].min() == 0.0 and values["education_num"].max() == 1.0
    assert np.isclose(values["education_num"], (10 - low) / (high - low)).sum() >= len(MISSING_EDUCATION)
    # log: log1p, then z-scored.
    logged = np.log1p(raw_rows["capital_gain"].to_numpy())
    expected = np.sort((logged - logged.mean()) / logged.std())
    np.testing.assert_allclose(np.sort(values["capital_gain"]), expected, atol=1e-4)
    # The label is 1 exactly for the configured positive value.
    assert sorted(values["income"]) == sorted((raw_rows["income"] == ">50K").astype(int))


def test_quantile_buckets_vocabularies_and_crosses(transformed, raw_rows):
    _, output, values = transformed
    # Bucket ids follow the raw values' order and stay within the configured buckets.
    for name, column, buckets in [
        ("hours_per_week", "hours_per_week", 5),
        ("education_num_bucket", "education_num", 4),
    ]:
        ids = values[name]
        assert ids.min() == 0 and ids.max() == buckets - 1
        raw = raw_rows[column].fillna(10).to_numpy()
        assert (np.diff(ids[np.argsort(raw, kind="stable")]) >= 0).all()
    # top_k keeps the 3 most frequent countries; the others share the 2 OOV ids after them.
    vocab = output.vocabulary_by_name("native_country")
    assert len(vocab) == 3 and vocab[0] == b"United-States"
    countries = set(zip(raw_rows["native_country"], values["native_country"], strict=True))
    known = lambda country: (country if isinstance(country, str) else MISSING_TOKEN).encode() in vocab  # noqa: E731
    assert all(known(c) == (i < 3) and 0 <= i < 5 for c, i in countries)
    # Missing is a token of the default vocabulary, with one OOV id after it.
    workclass = output.vocabulary_by_name("workclass")
    missing = workclass.index(MISSING_TOKEN.encode())
    assert (values["workclass"][list(MISSING_WORKCLASS)] == missing).all()
    assert values["workclass"].min() >= 0 and values["workclass"].max() <= len(workclass)
    # A cross is a function of its members, hashed into its buckets.
    pairs = pd.DataFrame({"w": values["workclass"], "h": values["hours_per_week"], "x": values[CROSS]})
    assert pairs.groupby(["w", "h"])["x"].nunique().max() == 1
    assert pairs["x"].min() >= 0 and pairs["x"].max() < 7 and pairs["x"].nunique() > 2


def test_the_exported_graph_transforms_raw_rows_as_training_did(transformed, raw_rows):
    import tensorflow as tf

    config, output, values = transformed
    schema = config.data_schema
    layer = output.transform_features_layer()
    examples = encode_examples(raw_rows, schema)  # missing values are left out of the tf.Examples
    served = layer(tf.io.parse_example(tf.constant(examples), raw_feature_spec(schema, with_label=False)))
    served = {k: v.numpy() for k, v in served.items()}

    assert set(served) == set(values) - {schema.label.name}
    # Row for row, serving reproduces the training examples, missing values included (the order of the
    # written examples is not guaranteed, so rows are compared as sorted tuples).
    names = sorted(served)
    as_rows = lambda v: sorted(zip(*(np.round(v[n], 5).tolist() for n in names), strict=True))  # noqa: E731
    assert as_rows(served) == as_rows(values)
    assert (served["age"][list(MISSING_AGE)] == 0.0).all()
    # A value never seen in training lands in an OOV bucket.
    unseen = raw_rows.head(1).assign(native_country="Atlantis", workclass=None)
    one = layer(tf.io.parse_example(tf.constant(encode_examples(unseen, schema)), raw_feature_spec(schema, False)))
    assert int(one["native_country"][0]) in (3, 4)
    assert int(one["workclass"][0]) == output.vocabulary_by_name("workclass").index(MISSING_TOKEN.encode())


def test_the_model_reads_buckets_and_crosses_as_embedded_ids(transformed):
    config, output, values = transformed
    features = model_inputs(output, config.data_schema)

    assert list(features) == [
        "age", "education_num", "capital_gain",  # numbers first, in the schema's order
        "hours_per_week", "workclass", "native_country", "education_num_bucket", CROSS,
    ]  # fmt: skip
    assert features["age"] is None and features["education_num_bucket"] == 4 and features[CROSS] == 7
    assert features["workclass"] == len(output.vocabulary_by_name("workclass")) + 1
    model = build_model(features, config.training)
    loss = model.train_on_batch({n: values[n] for n in features}, values["income"])
    assert np.isfinite(loss).all()


def test_the_users_preprocessing_fn_is_used_by_dotted_path():
    import tensorflow as tf

    inputs = {
        "age": tf.sparse.from_dense(tf.constant([[30.0], [0.0]])),
        "income": tf.sparse.from_dense(tf.constant([[">50K"], ["<=50K"]])),
    }
    for path in (f"{__name__}:log_age", f"{__name__}.log_age"):
        fn = make_preprocessing_fn(config_with({"age": {}}, preprocessing_fn=path).data_schema)
        outputs = fn(inputs)
        assert set(outputs) == {"age_log", "income"}  # the label is encoded as usual
        np.testing.assert_allclose(outputs["age_log"].numpy(), np.log1p([[30.0], [0.0]]))
        assert outputs["income"].numpy().tolist() == [1, 0]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_package.features:fn", "cannot import 'no_such_package.features:fn': No module named 'no_such"),
        (f"{__name__}:no_such_fn", f"cannot import '{__name__}:no_such_fn': .* has no attribute 'no_such_fn'"),
        (f"{__name__}.NOT_CALLABLE", f"'{__name__}.NOT_CALLABLE' is a int, not a function"),
    ],
)
def test_a_preprocessing_fn_that_cannot_be_used_is_named_in_the_error(path, message):
    schema = config_with({"age": {}}, preprocessing_fn=path).data_schema
    with pytest.raises(ConfigError, match=f"schema.preprocessing_fn: {message}"):
        make_preprocessing_fn(schema)


@pytest.mark.parametrize(
    ("features", "schema", "message"),
    [
        ({"age": {"transform": "bucketize"}}, {}, "transform bucketize needs buckets"),
        ({"age": {"top_k": 3}}, {}, "'age': top_k do not apply to numeric features"),
        ({"sex": {"transform": "log"}}, {}, "'sex': transform do not apply to categorical features"),
        ({"age": {"transform": "log", "min": -1}}, {}, "transform log needs values >= 0"),
        ({"sex": {"impute": 1}}, {}, "impute of a categorical feature must be a quoted token"),
        ({"age": {}, "sex": {}}, {"crosses": [["age", "sex"]]}, r"numeric \['age'\] in \['age', 'sex'\] need buckets"),
        ({"age": {}, "sex": {"audit_only": True}}, {"crosses": [["age", "sex"]]}, r"\['sex'\], not features the"),
        ({"age": {"buckets": 3}, "sex": {}}, {"preprocessing_fn": "pkg.mod:fn"}, "replaces the configured transforms"),
        ({"age": {}}, {"preprocessing_fn": "fn"}, "'fn' is not 'package.module:function'"),
    ],
)
def test_transform_options_that_do_not_fit_are_refused(features, schema, message):
    with pytest.raises(ValidationError, match=message):
        config_with(features, **schema)


def test_packed_vocabularies_write_what_tft_vocabulary_writes(tmp_path, raw_rows, monkeypatch):
    """Declared-value features are counted and written by one analyzer: the same files as ``tft.vocabulary``
    (ties, missing values, and the empty token and tokens with a line break left out, as TFT does), the same ids
    and id ranges; a top_k feature keeps TFT's own vocabulary."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from pipelines.features import transform

    rows = raw_rows.copy()
    counts = {"White": 200, "Black": 80, "Asian-Pac-Islander": 40, "Other": 40, "Amer-Indian-Eskimo": 30, "": 3}
    races = [race for race, count in counts.items() for _ in range(count)] + ["two\nlines"] * 2
    rows["race"] = races + [None] * (len(rows) - len(races))  # two tokens tie at 40; 5 rows missing
    config = config_with({"race": {}, "workclass": {}, "sex": {"num_oov_buckets": 2}, "native_country": {"top_k": 3}})
    packed = []
    analyzer = transform._vocabularies_analyzer

    def spied(names):
        packed.extend(names)
        return analyzer(names)

    monkeypatch.setattr(transform, "_vocabularies_analyzer", spied)
    results = {}
    for flag, tf1 in ((True, True), (False, True), ("TF2", False)):  # the last traced as a TF2 graph
        monkeypatch.setattr(transform, "PACKED_VOCABULARIES", bool(flag))
        monkeypatch.setattr(transform, "TF1_GRAPH", tf1)
        out = TransformOutput(tmp_path / str(flag))
        out.path.mkdir()
        rows[config.data_schema.columns].to_parquet(out.train_raw, index=False)
        analyze_and_transform(out, config)
        output = tft.TFTransformOutput(str(out.tft_dir))
        spec = output.transformed_feature_spec()
        files = [str(p) for p in out.transformed_dir.glob("*.tfrecord")]
        batch = next(iter(tf.data.TFRecordDataset(files).batch(1000).map(lambda x: tf.io.parse_example(x, spec))))  # noqa: B023
        results[flag] = output, {k: v.numpy() for k, v in batch.items()}

    assert set(packed) == {"race", "sex", "workclass"}  # never the top_k feature (a TF2 graph is traced twice)
    (packed_output, packed_values), (exact_output, exact_values) = results[True], results[False]
    for name in ("race", "workclass", "sex", "native_country"):
        assert packed_output.vocabulary_by_name(name) == exact_output.vocabulary_by_name(name)
        assert (packed_values[name] == exact_values[name]).all()
        assert results["TF2"][0].vocabulary_by_name(name) == exact_output.vocabulary_by_name(name)
        assert (results["TF2"][1][name] == exact_values[name]).all()
    race = packed_output.vocabulary_by_name("race")
    assert race[:4] == [b"White", b"Black", b"Other", b"Asian-Pac-Islander"]  # a tie: the greater value first
    assert MISSING_TOKEN.encode() in race and b"" not in race and b"two\nlines" not in race
    assert model_inputs(packed_output, config.data_schema) == model_inputs(exact_output, config.data_schema)

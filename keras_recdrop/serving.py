"""`export_mc`: Monte Carlo dropout in a served model.

A TensorFlow SavedModel whose serving function takes the inputs and a seed
and returns the mean and spread of `samples` stochastic forward passes,
with the package's noise on: `keras_recdrop.mc_predict` inside the graph.
The function runs the passes exactly as `mc_predict` does (the same blocks
of rows, the same tiled copies, the same random streams seeded from the
request's seed by `mc_dropout._stream_seeds_in_graph`), so the same seed
gives the same numbers in both, to float rounding.

The seed generators' states are not variables of the served function: each
pass reads and advances them inside a `keras.StatelessScope`, and they are
carried from pass to pass as loop values. The graph therefore assigns no
variable, and concurrent requests cannot disturb each other's streams.
"""

import keras
from keras import ops

from keras_recdrop import _compat
from keras_recdrop import _validation
from keras_recdrop import mc_dropout
from keras_recdrop import noise_mode

_BACKENDS = ("tensorflow", "jax")


def _input_signature(model):
    """The model's inputs as a structure of `keras.InputSpec`."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            "Argument `input_signature` is needed for a model without "
            "symbolic inputs (a subclassed model, or a Sequential model "
            f"built without `keras.Input`); received model={model.name!r} "
            "and input_signature=None."
        )
    try:  # A Functional model's inputs in their structure (a dict, ...).
        structure = model.input
    except (AttributeError, ValueError):  # A Sequential model never called.
        structure = None
    if structure is None or len(keras.tree.flatten(structure)) != len(inputs):
        structure = inputs[0] if len(inputs) == 1 else list(inputs)
    return keras.tree.map_structure(
        lambda t: keras.InputSpec(shape=t.shape, dtype=t.dtype), structure
    )


def _output_names(count):
    if count == 1:
        return ["mean"], ["std"]
    return [f"mean_{k}" for k in range(count)], [
        f"std_{k}" for k in range(count)
    ]


def _smaller(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    return ops.minimum(a, b)


def _output_shapes(model, input_signature):
    """The shape of each output leaf without its batch axis, and dtype."""
    symbolic = keras.tree.map_structure(
        lambda spec: keras.KerasTensor(spec.shape, spec.dtype),
        input_signature,
    )
    leaves = keras.tree.flatten(model.compute_output_spec(symbolic))
    shapes = [tuple(y.shape[1:]) for y in leaves]
    if any(None in shape for shape in shapes):
        raise ValueError(
            "Argument `input_signature` must give every axis of the inputs "
            "but the batch axis, so that the outputs have a known shape "
            f"(the outputs' shapes would be {[y.shape for y in leaves]}); "
            f"received input_signature={input_signature!r}."
        )
    dtypes = [keras.backend.result_type(y.dtype, "float32") for y in leaves]
    return shapes, dtypes


def _monte_carlo_function(model, samples, batch_size, plan, outputs):
    """`f(x, seed) -> {"mean": ..., "std": ...}`, to be traced in a graph.

    Computes what `mc_predict(model, x, samples, seed=seed,
    batch_size=batch_size, ...)` computes: `mc_dropout._layout`'s blocks of
    rows (the last one wrapping round) and tiled copies; pass `k` of the
    single loop is chunk `k % chunks` of block `k // chunks`, the order of
    `mc_predict`'s two nested loops, and the generators' states run from
    pass to pass in that order; the moments are combined with the same
    pairwise update, in float64 where the backend has it (float32 on JAX
    without x64). A model without noise runs one pass per block: every
    sample would equal it, and the spread is exactly 0.
    """
    generators = [g.state for g in plan.generators]
    generator_ids = {id(v) for v in generators}
    shapes, dtypes = outputs
    accumulate = "float32" if keras.backend.backend() == "jax" else "float64"
    if not plan.noisy:
        samples = 1

    def forward(inputs, states):
        # Every variable is mapped, so that an enclosing scope (the JAX
        # exporter's) still provides the weights; the generators' states
        # are the loop's.
        mapping = [
            (v, v.value) for v in model.variables if id(v) not in generator_ids
        ]
        mapping += list(zip(generators, states, strict=True))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            outputs = model(inputs, training=False)
        return outputs, [scope.get_current_value(v) for v in generators]

    def sample(x, seed):
        first = keras.tree.flatten(x)[0]
        rows = first.shape[0]
        if rows is None:
            rows = ops.shape(first)[0]
        block = _smaller(rows, batch_size)
        copies = 1
        if not plan.per_call:
            copies = ops.maximum(1, _smaller(samples, batch_size // block))
            if isinstance(block, int):
                copies = max(1, min(samples, batch_size // block))
        chunks = (samples + copies - 1) // copies
        blocks = (rows + block - 1) // block

        def tiled(start):
            index = ops.mod(start + ops.arange(block), rows)
            return keras.tree.map_structure(
                lambda v: ops.tile(
                    ops.take(v, index, axis=0),
                    [copies] + [1] * (len(v.shape) - 1),
                ),
                x,
            )

        states = [
            ops.cast(ops.stack([s, ops.zeros_like(s)]), v.dtype)
            for v, s in zip(
                generators,
                mc_dropout._stream_seeds_in_graph(seed, len(generators)),
                strict=True,
            )
        ]
        zeros = [
            ops.zeros((blocks, block) + shape, accumulate) for shape in shapes
        ]

        def body(k, states, means, m2s):
            b, j = k // chunks, k % chunks
            outputs, states = forward(tiled(b * block), states)
            used = _smaller(copies, samples - j * copies)
            count_a = ops.cast(j * copies, accumulate)
            count_b = ops.cast(used, accumulate)
            count = count_a + count_b
            weight = ops.cast(ops.arange(copies) < used, accumulate)
            selected = ops.arange(blocks) == b
            new_means, new_m2s = [], []
            for y, shape, mean, m2 in zip(
                keras.tree.flatten(outputs), shapes, means, m2s, strict=True
            ):
                extra = (1,) * (1 + len(shape))
                y = ops.reshape(
                    ops.cast(y, accumulate), (copies, block) + shape
                )
                w = ops.reshape(weight, (copies,) + extra)
                mean_b = ops.sum(w * y, axis=0) / count_b
                m2_b = ops.sum(w * (y - mean_b) ** 2, axis=0)
                old_mean = ops.take(mean, b, axis=0)
                delta = mean_b - old_mean
                where = ops.reshape(selected, (blocks,) + extra)
                new_means.append(
                    ops.where(
                        where,
                        (old_mean + delta * (count_b / count))[None],
                        mean,
                    )
                )
                new_m2 = (
                    ops.take(m2, b, axis=0)
                    + m2_b
                    + delta**2 * (count_a * count_b / count)
                )
                new_m2s.append(ops.where(where, new_m2[None], m2))
            return k + 1, states, new_means, new_m2s

        _, _, means, m2s = ops.while_loop(
            lambda k, *_: k < blocks * chunks,
            body,
            (ops.convert_to_tensor(0, "int32"), states, zeros, zeros),
        )
        result = {}
        names = _output_names(len(shapes))
        for k, (mean, m2, shape, dtype) in enumerate(
            zip(means, m2s, shapes, dtypes, strict=True)
        ):
            mean = ops.reshape(mean, (-1,) + shape)[:rows]
            m2 = ops.reshape(m2, (-1,) + shape)[:rows]
            result[names[0][k]] = ops.cast(mean, dtype)
            result[names[1][k]] = ops.cast(ops.sqrt(m2 / samples), dtype)
        return result

    def serve(x, seed):
        with (
            noise_mode.monte_carlo(),
            _compat.calls_in_training(plan.dropout_layers),
        ):
            return sample(x, seed)

    return serve


def export_mc(
    model,
    filepath,
    samples=100,
    *,
    batch_size=1024,
    keras_dropout=False,
    input_signature=None,
    verbose=True,
):
    """Exports a SavedModel that serves Monte Carlo dropout predictions.

    Writes a TensorFlow SavedModel with one endpoint, `serve(x, seed)`
    (also the `serving_default` signature for TensorFlow Serving), which
    runs `samples` stochastic forward passes of `model` on `x` with the
    package's noise on and returns their mean and standard deviation:
    `keras_recdrop.mc_predict(model, x, samples, seed=seed,
    batch_size=batch_size, keras_dropout=keras_dropout)` inside the graph.
    The same seed gives the same numbers as `mc_predict`, to float
    rounding (the forward passes are the same, compiled in another graph);
    a client that wants fresh noise sends a fresh seed with each request.

    The served function assigns no variable: the random streams are
    seeded from the request's seed and carried from pass to pass inside
    the graph, so concurrent requests do not affect each other. It
    needs neither Keras nor this package to run: reload it with
    `tf.saved_model.load(filepath)` in any TensorFlow process.

    Works on the TensorFlow backend (any number of rows per request) and
    on the JAX backend (through `jax2tf`; give the number of rows in
    `input_signature`); TensorFlow must be installed either way. On
    PyTorch, Keras cannot write a SavedModel: load the model's `.keras` file
    on the TensorFlow backend and export there.

    Args:
        model: A `keras.Model` with the package's layers or cells, as for
            `mc_predict`. Not stateful.
        filepath: `str` or `pathlib.Path`, the SavedModel's directory.
        samples: Positive integer, the number of forward passes `N` of
            every request.
        batch_size: Positive integer, the most rows in one forward pass,
            as in `mc_predict`. Default 1024.
        keras_dropout: Boolean. If `True`, Keras's dropout layers are on
            too, as in `mc_predict`.
        input_signature: Optional structure of `keras.InputSpec` for `x`
            (like the model's inputs). Default: the model's inputs, with
            any number of rows.
        verbose: Boolean. Whether Keras prints the exported endpoints.

    Returns:
        `None`. The endpoint `serve(x, seed)` of the SavedModel takes `x`
        (as `input_signature`) and `seed`, an int32 scalar, and returns a
        dict: `"mean"` and `"std"`, shaped like the model's output, or
        `"mean_0"`, `"std_0"`, `"mean_1"`, ... for a model with several
        outputs (in `keras.tree.flatten` order).

    Example:

    >>> import tempfile, numpy as np, keras, keras_recdrop
    >>> import tensorflow as tf
    >>> model = keras.Sequential([
    ...     keras.Input((5, 3)),
    ...     keras_recdrop.GalLSTM(8, dropout=0.2, recurrent_dropout=0.2),
    ...     keras.layers.Dense(1)])
    >>> path = tempfile.mkdtemp()
    >>> keras_recdrop.export_mc(model, path, samples=20, verbose=False)
    >>> served = tf.saved_model.load(path)  # any TensorFlow process
    >>> x = np.random.rand(4, 5, 3).astype("float32")
    >>> out = served.serve(x, np.int32(1))
    >>> mean, std = keras_recdrop.mc_predict(model, x, samples=20, seed=1)
    >>> float(np.abs(out["mean"] - mean).max()) < 1e-6
    True
    >>> float(np.abs(out["std"] - std).max()) < 1e-6
    True
    """
    samples = _validation.check_positive_int("samples", samples)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    keras_dropout = _validation.check_bool("keras_dropout", keras_dropout)
    verbose = _validation.check_bool("verbose", verbose)
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a keras.Model; received "
            f"model={model!r} of type {type(model).__name__}."
        )
    backend = keras.backend.backend()
    if backend not in _BACKENDS:
        raise NotImplementedError(
            "keras_recdrop.export_mc writes a TensorFlow SavedModel from "
            f"the TensorFlow or JAX backend; the backend is {backend!r}. "
            "Load the model's .keras file with KERAS_BACKEND=tensorflow "
            "and export it there."
        )
    if input_signature is None:
        input_signature = _input_signature(model)
    if backend == "jax" and any(
        spec.shape[0] is None for spec in keras.tree.flatten(input_signature)
    ):
        raise ValueError(
            "On the JAX backend, argument `input_signature` must give the "
            "number of rows (jax2tf traces the sampling loop for one batch "
            "size), e.g. keras.InputSpec(shape=(8, *model.input_shape[1:]))"
            f"; received input_signature={input_signature!r}."
        )
    if not model.built:
        raise ValueError(
            "Argument `model` must be built (called once, or built with "
            f"keras.Input) to be exported; received model={model.name!r}."
        )
    layers = _compat.flatten_layers(model)
    mc_dropout._check_layers(layers)
    plan = mc_dropout._sampling_plan(layers, keras_dropout)
    serve = _monte_carlo_function(
        model,
        samples,
        batch_size,
        plan,
        _output_shapes(model, input_signature),
    )
    archive = keras.export.ExportArchive()
    archive.track(model)
    kwargs = {}
    if backend == "jax":
        kwargs["is_static"] = True
        kwargs["jax2tf_kwargs"] = {"with_gradient": False}
    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            input_signature,
            keras.InputSpec(shape=(), dtype="int32"),
        ],
        **kwargs,
    )
    archive.write_out(str(filepath), verbose=verbose)

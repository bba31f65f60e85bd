"""Every private name of Keras and JAX the package uses, in one place.

The rest of the package imports public Keras only (`keras`, `keras.ops`,
`keras.random`, `keras.layers`); `tests/test_compat.py` checks that no other
module imports `keras.src` or reads JAX's trace internals. Each name is
looked up in every layout that exists, with a fallback:

    name                   Keras 3.8 - 3.15 / Keras 3.16 / neither found
    ---------------------  ------------------------------------------------
    DropoutRNNCell         keras.src.layers.rnn.dropout_rnn_cell (both)
                           / ImportError naming it
    rnn_loop               keras.src.backend.rnn (the function)
                           / keras.src.backend.rnn.rnn (`rnn` is a module)
                           / ImportError naming it
    fused_lstm, fused_gru  keras.src.backend.lstm, .gru
                           / keras.src.backend.rnn.lstm, .gru
                           / raises NotImplementedError: the cell loop runs
    keras_rnn_test_file    keras/src/layers/rnn/*_test.py in the wheel
                           / not shipped / None
    staging_trace (JAX)    a tracer's `_trace`, `parent_trace` and the
                           `DynamicJaxprTrace` type / None: nothing detected
    is_functional          keras.src.models.functional.Functional (both)
                           / ImportError naming it
    flatten_layers         `Layer._flatten_layers` (both)
    rnn_loop_with_lookahead  TensorFlow: `rnn_loop`'s code with its module's
                           `tf` global seen through a proxy / `rnn_loop`
                           itself (Keras's 32 iterations at once)
    run_rnn_loop           `rnn_loop` (or the above) with the number of
                           steps passed as Keras's loops expect it
    RNNLayer               overrides `keras.layers.RNN`'s private
                           `_maybe_config_dropout_masks` / never called:
                           Keras's hooks reach every cell (unused masks)
    disable_xla            sets `supports_jit = False` on a layer
    calls_in_training      a layer's `call` replaced for a context
    compile_inference      a model's inference call compiled per backend
                           (`jax.jit`, `tf.function`, eager torch)
    tf_replica_id          `tf.distribute.get_replica_context()` / None
    split_gates, lerp      PyTorch: `Tensor.chunk`, `torch.lerp` / the
                           `keras.ops` expression (other backends)

One public feature of Keras is detected rather than looked up:

    keras_rnn_passes_step_seeds   `step_seed` in the signature of
                                  `keras.layers.StackedRNNCells.call`
                                  (the Keras change proposed in
                                  docs/upstream.md) / False

Why each is needed:

* `DropoutRNNCell`: `keras.layers.RNN` calls a cell's mask hooks
  (`get_dropout_mask`, `get_recurrent_dropout_mask`) before its time loop
  only if the cell is an instance of this class. No public alias exists.
* `rnn_loop`: the backend-neutral time loop that `keras.layers.RNN` itself
  calls; `keras_recdrop.RNN` calls it with the per-step seeds as a second
  scanned input.
* `fused_lstm`, `fused_gru`: the backends' fused kernels (cuDNN on a GPU,
  and a CPU fallback on PyTorch) that `keras.layers.LSTM` / `GRU` call.
* `is_functional`: `keras.models.clone_model` takes a `clone_function`
  (which `keras_recdrop.convert` is) only for Sequential and Functional
  models; `keras.Model(inputs, outputs)` returns this class, which has no
  public alias.
* `flatten_layers`: every layer and cell nested in a model, each once
  (`keras_recdrop.mc_predict` looks for noise, dropout and stateful layers);
  Keras's public `Model.layers` lists only the top level.
* `rnn_loop_with_lookahead`: Keras's TensorFlow loop builds its
  `while_loop` with `parallel_iterations=32` and takes no argument for it.
  The loop's gradient inherits the number, and the backward iterations of a
  per-gate cell compute their recomputed masked copies up to 32 iterations
  ahead and hold them (docs/design.md, "How far TensorFlow's loop runs
  ahead"). The package runs Keras's own loop code with a smaller number,
  without changing Keras's module.
* `staging_trace`: to raise a clear error, instead of silently repeating
  noise, when a cell would draw per-step noise from its seed generator
  inside a JAX `lax.scan` of a plain `keras.layers.RNN`.
* `RNNLayer`: `keras.layers.RNN.call` draws every `DropoutRNNCell`'s masks
  through a private method; `keras_recdrop.RNN` builds its cells' per-call
  constants itself (`begin_call`) and must keep Keras from drawing them a
  second time.
* `disable_xla`, `calls_in_training`, `tf_replica_id`: a Keras attribute
  (`supports_jit`) and a layer's `call` set from outside, and TensorFlow's
  replica context: the package's other writes into Keras objects and its
  one TensorFlow call besides the stateless random numbers of
  `_stateless`.
* `split_gates`, `lerp`: PyTorch runs the package's time loop eagerly, in
  Python, and every op of a step is a dispatch that costs microseconds
  whatever the tensor's size. `keras.ops.split` converts its input and
  checks the sections before `torch.split` (8 us a call on a 2-vCPU EPYC,
  against 3 us for `Tensor.chunk`), and `keras.ops` has no linear
  interpolation, so zoneout's blend at inference took three ops where
  `torch.lerp` is one (11 us against 3.5 us at 64 x 256). Both are
  public PyTorch; they live here because no other module imports a
  backend (docs/design.md, "The PyTorch loop").

Every other module of the package stays off Keras's private surface and
imports no backend (`tests/test_compat.py` checks the source).
"""

import contextlib
import functools
import importlib
import inspect
import pathlib
import types
import weakref

import keras


def _keras_backend_module():
    return importlib.import_module("keras.src.backend")


def _import_dropout_rnn_cell():
    try:
        module = importlib.import_module(
            "keras.src.layers.rnn.dropout_rnn_cell"
        )
        return module.DropoutRNNCell
    except (ImportError, AttributeError) as error:
        raise ImportError(
            "keras_recdrop needs `DropoutRNNCell` from "
            "`keras.src.layers.rnn.dropout_rnn_cell`, which Keras "
            f"{keras.__version__} does not have. Supported Keras versions "
            "are listed in the README."
        ) from error


def _find_rnn_loop():
    backend = _keras_backend_module()
    rnn = getattr(backend, "rnn", None)
    if callable(rnn):  # Keras 3.8 - 3.15: the loop function itself.
        return rnn
    loop = getattr(rnn, "rnn", None)  # Keras 3.16: a module holding it.
    if callable(loop):
        return loop
    raise ImportError(
        "keras_recdrop needs the backend RNN loop (`keras.src.backend.rnn` "
        f"or `keras.src.backend.rnn.rnn`), which Keras {keras.__version__} "
        "does not have. Supported Keras versions are listed in the README."
    )


def _find_fused(name):
    backend = _keras_backend_module()
    rnn = getattr(backend, "rnn", None)
    kernel = None
    if rnn is not None and not callable(rnn):  # Keras 3.16.
        kernel = getattr(rnn, name, None)
    if kernel is None:  # Keras 3.8 - 3.15.
        kernel = getattr(backend, name, None)
    if callable(kernel):
        return kernel

    def unavailable(*args, **kwargs):
        raise NotImplementedError(
            f"Keras {keras.__version__} exposes no fused {name} kernel."
        )

    return unavailable


DropoutRNNCell = _import_dropout_rnn_cell()
rnn_loop = _find_rnn_loop()
fused_lstm = _find_fused("lstm")
fused_gru = _find_fused("gru")


class _WhileLoopsAtMost:
    """A view of the `tensorflow` module whose `while_loop` always passes
    `parallel_iterations=iterations`; every other name is TensorFlow's."""

    def __init__(self, tf, iterations):
        self._tf = tf
        self._iterations = iterations

    def __getattr__(self, name):
        return getattr(self._tf, name)

    def while_loop(self, *args, **kwargs):
        kwargs["parallel_iterations"] = self._iterations
        return self._tf.while_loop(*args, **kwargs)


@functools.cache
def rnn_loop_with_lookahead(iterations):
    """`rnn_loop`, running at most `iterations` loop iterations at once.

    On TensorFlow: a copy of Keras's loop function whose global `tf` is a
    view of TensorFlow that passes `parallel_iterations=iterations` to
    `while_loop`; the gradient's loop takes the same number (TensorFlow's
    `while_v2` reads it from the forward loop). The copy has its own
    globals, so Keras's module, and every other layer's loop, is untouched.
    Only the schedule changes, never a value. On the other backends, or if
    Keras's loop no longer builds its loop from a global `tf`: `rnn_loop`.
    """
    loop = rnn_loop
    namespace = getattr(loop, "__globals__", None) or {}
    tf = namespace.get("tf")
    if (
        keras.backend.backend() != "tensorflow"
        or not isinstance(loop, types.FunctionType)
        or not callable(getattr(tf, "while_loop", None))
    ):
        return loop
    copy = types.FunctionType(
        loop.__code__,
        {**namespace, "tf": _WhileLoopsAtMost(tf, iterations)},
        loop.__name__,
        loop.__defaults__,
        loop.__closure__,
    )
    copy.__kwdefaults__ = loop.__kwdefaults__
    return functools.update_wrapper(copy, loop)


def run_rnn_loop(step, inputs, initial_states, *, lookahead=None, **kwargs):
    """Keras's backend loop over time-major `inputs` (a tensor or a tuple).

    `lookahead`: `None` for Keras's loop as it is, else the number of
    iterations TensorFlow may run at once (`rnn_loop_with_lookahead`).
    Passes the number of steps itself: Keras's loops read a missing
    `input_length` from `inputs.shape[1]`, which for time-major inputs is
    the batch size (and which a tuple does not have). Where the number of
    steps is only known when the graph runs (TensorFlow, `Input((None,
    D))`), it is passed as a one-element list holding the dynamic length:
    TensorFlow's loop then iterates `reduce_max(input_length)` times and,
    the list not being a `tf.Tensor`, builds no length mask from it. Other
    keyword arguments go to the loop (`go_backwards`, `mask`, `unroll`,
    `zero_output_for_mask`, `return_all_outputs`).
    """
    loop = rnn_loop if lookahead is None else rnn_loop_with_lookahead(lookahead)
    first = keras.tree.flatten(inputs)[0]
    length = first.shape[0]
    if length is None:
        length = [keras.ops.shape(first)[0]]
    return loop(
        step,
        inputs,
        initial_states,
        input_length=length,
        time_major=True,
        **kwargs,
    )


class RNNLayer(keras.layers.RNN):
    """`keras.layers.RNN` that leaves some cells out of its mask protocol.

    `keras.layers.RNN.call` draws the masks of every `DropoutRNNCell`
    before its time loop (`_maybe_config_dropout_masks`, a private method
    it calls on itself). A subclass that builds the per-call constants of
    some cells itself (`keras_recdrop.RNN`, with the cells' `begin_call`)
    says which in `builds_cell_context(cell)`; this override skips those
    and still serves every other cell, such as a Keras `LSTMCell` with
    dropout in the same `StackedRNNCells`. Keras's own method finds the
    input of each cell of a stack by calling the cells before it; that
    call would reach the package's cells outside any loop, so here a stack
    is walked with inputs of the right shape instead (a cell's masks
    depend only on its input's shape).

    Fallback: if Keras stops calling the method, the override is never
    called and Keras's protocol reaches the package's cells too. Their
    adapter (`keras_recdrop.keras_protocol`) then draws masks that the
    layer does not use: the outputs stay right, the random stream
    advances more.
    """

    def builds_cell_context(self, cell):
        return False

    def _maybe_config_dropout_masks(self, cell, input_sequence, input_state):
        if self.builds_cell_context(cell):
            return
        if not isinstance(cell, keras.layers.StackedRNNCells):
            super()._maybe_config_dropout_masks(
                cell, input_sequence, input_state
            )
            return
        batch = keras.ops.shape(input_sequence)[0]
        for inner, state in zip(cell.cells, input_state, strict=True):
            self._maybe_config_dropout_masks(inner, input_sequence, state)
            size = getattr(inner, "output_size", None)
            if size is None:
                size = keras.tree.flatten(inner.state_size)[0]
            input_sequence = keras.ops.zeros(
                (batch, size), dtype=input_sequence.dtype
            )


def disable_xla(layer):
    """Marks `layer` as not compilable with XLA (`supports_jit = False`).

    What `keras.layers.LSTM` does when it runs a cuDNN kernel on
    TensorFlow: the model's `jit_compile="auto"` then resolves to `False`.
    """
    layer.supports_jit = False


# `torch.Tensor` on the PyTorch backend, else `None`: read by the two
# functions below at every step of a loop, so looked up once, when the
# package is imported (Keras fixes its backend when it is imported; Keras
# itself has imported torch by then). A module constant, not a
# `functools.cache` call, which `torch.compile` warns about when it traces
# a step. Stale only if the backend changes in a running process, and then
# harmless: the `isinstance` checks fail and `keras.ops` runs.
_TORCH_TENSOR = (
    importlib.import_module("torch").Tensor
    if keras.backend.backend() == "torch"
    else None
)


def split_gates(z, count):
    """`keras.ops.split(z, count, axis=-1)`; one `Tensor.chunk` on PyTorch.

    Example:

    >>> import keras
    >>> from keras_recdrop import _compat
    >>> z = keras.ops.reshape(keras.ops.arange(8.0), (1, 8))
    >>> [keras.ops.convert_to_numpy(g).tolist()
    ...  for g in _compat.split_gates(z, 4)]
    [[[0.0, 1.0]], [[2.0, 3.0]], [[4.0, 5.0]], [[6.0, 7.0]]]
    """
    if _TORCH_TENSOR is not None and isinstance(z, _TORCH_TENSOR):
        return z.chunk(count, dim=-1)
    return keras.ops.split(z, count, axis=-1)


def lerp(start, end, weight):
    """`start + weight * (end - start)`; one `torch.lerp` on PyTorch.

    `weight` is a Python float. Elsewhere the two-op expression, which the
    graph compilers fuse.

    Example:

    >>> import keras
    >>> from keras_recdrop import _compat
    >>> keras.ops.convert_to_numpy(_compat.lerp(
    ...     keras.ops.zeros((1, 2)), keras.ops.ones((1, 2)), 0.25)).tolist()
    [[0.25, 0.25]]
    """
    if (
        _TORCH_TENSOR is not None
        and isinstance(start, _TORCH_TENSOR)
        and isinstance(end, _TORCH_TENSOR)
    ):
        return start.lerp(end, weight)
    return start + weight * (end - start)


def tf_replica_id():
    """The id of the current `tf.distribute` replica, or `None`.

    `None` unless the backend is TensorFlow and the code runs inside a
    replica context with more than one replica in sync (the body of
    `strategy.run`, which is where `fit`, `evaluate` and `predict` call the
    model under a `MirroredStrategy`). Outside a strategy TensorFlow's
    default replica context has one replica, and in a cross-replica context
    there is no replica context: both give `None`. Keras has no
    backend-neutral way to ask which replica runs the current step; see
    "Masks across replicas" in docs/scaling.md.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context.replica_id_in_sync_group


@contextlib.contextmanager
def calls_in_training(layers):
    """While the context lasts, `layers` run as in training.

    Each layer's `call` gets `training=True` whatever it is called with;
    after the context, its class's `call` again. For Keras's own dropout
    layers inside `keras_recdrop.mc_predict(keras_dropout=True)`: Keras
    resolves `training` for a whole model call, and has no per-layer
    switch. The wrapper is an attribute of the layer instance only, for the
    duration of the context.
    """

    def forced(call):
        def call_in_training(*args, **kwargs):
            kwargs["training"] = True
            return call(*args, **kwargs)

        return call_in_training

    layers = list(layers)
    for layer in layers:
        layer.call = forced(layer.call)
    try:
        yield
    finally:
        for layer in layers:
            del layer.call


def compile_inference(model, context):
    """`model(x, training=False)`, compiled once for the backend.

    Returns `forward(x) -> outputs`. `context(model)` is a context manager
    active around every call of the model in Python: at each call on
    PyTorch (eager, under `torch.no_grad()`), only while the function is
    traced on JAX (`jax.jit` of `model.stateless_call`; the updated
    non-trainable variables, seed generators' states included, are
    assigned back after each call, as Keras's JAX predict does) and on
    TensorFlow (`tf.function`). A new input shape traces anew; the same
    shape reuses the compiled function. The model is held weakly, so a
    cache of these functions keyed by the model does not keep it alive.

    Why here: Keras compiles a model's functions only through its own
    `predict_function`, an attribute of the model; the package keeps its
    Monte Carlo function to itself (`keras_recdrop.mc_predict`).
    """
    reference = weakref.ref(model)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def pure(trainable, non_trainable, x):
            model = reference()
            with context(model):
                return model.stateless_call(
                    trainable, non_trainable, x, training=False
                )

        compiled = jax.jit(pure)

        def forward(x):
            model = reference()
            variables = model.non_trainable_variables
            outputs, values = compiled(
                [v.value for v in model.trainable_variables],
                [v.value for v in variables],
                x,
            )
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
            return outputs

        return forward
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def traced(x):
            model = reference()
            with context(model):
                return model(x, training=False)

        return traced
    if backend == "torch":
        import torch

        def eager(x):
            model = reference()
            with context(model), torch.no_grad():
                return model(x, training=False)

        return eager

    def plain(x):
        model = reference()
        with context(model):
            return model(x, training=False)

    return plain


def keras_rnn_test_file(filename):
    """The path of one of Keras's own RNN test files, or `None`.

    Keras's wheels up to 3.15 ship `keras/src/layers/rnn/*_test.py`; the
    3.16 nightlies do not.
    """
    path = pathlib.Path(keras.__file__).parent / "src" / "layers" / "rnn"
    path = path / filename
    return path if path.is_file() else None


def keras_layers_module():
    """`keras.src.layers`, the namespace Keras's own tests call `layers`."""
    return importlib.import_module("keras.src.layers")


def staging_trace(value):
    """The innermost JAX trace that stages `value` into a jaxpr, or `None`.

    Autodiff and batching traces (`LinearizeTrace`, `JVPTrace`,
    `BatchTrace`) wrap the staging trace of `jit` or of a loop body; they
    are skipped through their `parent_trace`. Reads JAX internals through
    `getattr` with defaults: if JAX renames them, this returns `None` and
    no loop is detected (the package's own `keras_recdrop.RNN` never needs
    the detection).
    """
    trace = getattr(value, "_trace", None)
    while trace is not None and type(trace).__name__ != "DynamicJaxprTrace":
        trace = getattr(trace, "parent_trace", None)
    return trace


def is_functional(model):
    """Whether `model` is a Functional model (`keras.Model(inputs, ...)`)."""
    try:
        module = importlib.import_module("keras.src.models.functional")
        functional = module.Functional
    except (ImportError, AttributeError) as error:
        raise ImportError(
            "keras_recdrop.convert needs `Functional` from "
            "`keras.src.models.functional`, which Keras "
            f"{keras.__version__} does not have."
        ) from error
    return isinstance(model, functional)


def flatten_layers(layer):
    """`layer` and every layer and cell inside it, each once."""
    return layer._flatten_layers(include_self=True, recursive=True)


def keras_rnn_passes_step_seeds():
    """Whether `keras.layers.RNN` gives cells a stateless seed per step.

    The Keras change proposed in docs/upstream.md: in training, a cell
    whose `call` takes a `step_seed` argument receives one for every time
    step, drawn before the loop from its `seed_generator`, so per-step
    noise works in a plain `keras.layers.RNN` inside a JAX `lax.scan`.
    `keras.layers.StackedRNNCells.call` takes the same argument (it routes
    each cell its seed), which is the public trace of the feature checked
    here. No released Keras has it yet; the package's cells declare the
    argument either way, so nothing but tests needs this check.
    """
    call = keras.layers.StackedRNNCells.call
    return "step_seed" in inspect.signature(call).parameters

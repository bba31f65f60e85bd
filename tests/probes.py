"""Probe weights and helpers that expose masks and noise through outputs.

With linear activations (`activation=None, recurrent_activation=None`) every
gate equals its pre-activation, so weights can route exactly one gate's
masked input to the output:

    i = z_i, f = z_f, g = z_c, o = z_o,  c_t = f c_{t-1} + i g,  h_t = o c_t

Constant gates come from the bias (zero kernels); the probed gate gets an
identity kernel, so with an input of ones the output is that gate's mask.
"""

import keras
import numpy as np
from keras import ops

GATE_INDEX = {"i": 0, "f": 1, "c": 2, "o": 3}


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def probe_weights(units, input_dim, gate, source="input", forget=0.0):
    """Weights for which one step from `c_0` gives `h = mask_gate * x`.

    Args:
        units: number of units; with `source="input"` `input_dim == units`.
        gate: which gate's mask to expose ("i", "f", "c" or "o").
        source: "input" routes `x_t` through the gate's kernel; "state"
            routes `h_{t-1}` through its recurrent kernel.
        forget: value of the forget gate when it is not the probed one.

    With gate "f" the output is `f * c_{t-1}`: run it from `c_0 = 1`.
    """
    kernel = np.zeros((input_dim, 4 * units), "float32")
    recurrent = np.zeros((units, 4 * units), "float32")
    bias = np.zeros((4 * units,), "float32")
    constant = {"i": 1.0, "f": forget, "c": 1.0, "o": 1.0}
    if gate == "f":
        constant["i"] = 0.0  # h = o * f * c_{t-1}
    for name, k in GATE_INDEX.items():
        block = slice(k * units, (k + 1) * units)
        if name == gate:
            target = kernel if source == "input" else recurrent
            target[:, block] = np.eye(target.shape[0], units, dtype="float32")
        else:
            bias[block] = constant[name]
    return [kernel, recurrent, bias]


def linear_probe_cell(cls, units, **kwargs):
    return cls(units, activation=None, recurrent_activation=None, **kwargs)


def run_rnn(
    cell,
    weights,
    x,
    training=True,
    initial_state=None,
    layer_cls=None,
    **rnn_kw,
):
    """Runs `layer_cls(cell)` with `weights` and returns numpy.

    `layer_cls` defaults to `keras_recdrop.RNN`.
    """
    import keras_recdrop

    layer_cls = layer_cls or keras_recdrop.RNN
    layer = layer_cls(cell, return_sequences=True, **rnn_kw)
    layer.build(x.shape)
    cell.set_weights(weights)
    if initial_state is not None:
        out = layer(x, initial_state=initial_state, training=training)
    else:
        out = layer(x, training=training)
    return to_numpy(out)


def exposed_gate_mask(
    cls, gate, source="input", batch=64, units=16, timesteps=1, **kwargs
):
    """The mask a fresh seeded cell applies to `gate`, read from outputs.

    Returns an array `(batch, timesteps, units)`.
    """
    x_value = 1.0 if source == "input" else 0.0
    x = np.full((batch, timesteps, units), x_value, "float32")
    h0 = (
        np.zeros((batch, units), "float32")
        if source == "input"
        else (np.ones((batch, units), "float32"))
    )
    c0 = (
        np.ones((batch, units), "float32")
        if gate == "f"
        else np.zeros((batch, units), "float32")
    )
    cell = linear_probe_cell(cls, units, **kwargs)
    weights = probe_weights(units, units, gate, source)
    return run_rnn(cell, weights, x, initial_state=[h0, c0])


def zoneout_h_decisions(
    zoneout_h,
    batch=256,
    units=16,
    timesteps=8,
    seed=0,
    unroll=False,
    layer_cls=None,
):
    """Zoneout's keep decisions for `h`, `(batch, timesteps, units)` bools.

    Probe with h_hat_t = x_t = t + 1: h_t == x_t iff the unit updated.
    `layer_cls` is the RNN layer (default `keras_recdrop.RNN`).
    """
    import keras_recdrop

    cell = linear_probe_cell(
        keras_recdrop.ZoneoutLSTMCell, units, zoneout_h=zoneout_h, seed=seed
    )
    weights = probe_weights(units, units, "c")  # f = 0: c_hat_t = x_t
    steps = np.arange(1, timesteps + 1, dtype="float32")
    x = np.broadcast_to(steps[None, :, None], (batch, timesteps, units))
    h = run_rnn(
        cell,
        weights,
        np.ascontiguousarray(x),
        unroll=unroll,
        layer_cls=layer_cls,
    )
    updated = h == steps[None, :, None]
    kept = np.concatenate([h[:, :1] == 0, h[:, 1:] == h[:, :-1]], axis=1)
    assert np.all(updated ^ kept)  # every unit either kept or updated
    return kept


def binomial_bound(p, n, sigmas=5.0):
    """Half-width of a `sigmas`-sigma band for a Bernoulli(p) frequency."""
    return sigmas * np.sqrt(max(p * (1 - p), 1e-12) / n)


def loss_and_gradients(model, x):
    """Sum-of-squares loss of a training forward pass and its gradients.

    Uses each backend's own autodiff (the only backend-specific code of the
    tests): `tf.GradientTape`, `jax.grad` over `stateless_call`, or torch's
    autograd.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_sum(tf.square(y))
        grads = tape.gradient(loss, model.trainable_variables)
        return to_numpy(y), [to_numpy(g) for g in grads]
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss_fn(tv):
            y, _ = model.stateless_call(tv, non_trainable, x, training=True)
            return jax.numpy.sum(y**2), y

        (_, y), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        return to_numpy(y), [to_numpy(g) for g in grads]
    if backend == "torch":
        y = model(x, training=True)
        loss = (y**2).sum()
        loss.backward()
        grads = [v.value.grad for v in model.trainable_variables]
        return to_numpy(y.detach()), [to_numpy(g) for g in grads]
    raise NotImplementedError(backend)


def reference_fused_lstm(
    sequences,
    initial_state_h,
    initial_state_c,
    mask,
    kernel,
    recurrent_kernel,
    bias,
    activation,
    recurrent_activation,
    return_sequences=False,
    go_backwards=False,
    unroll=False,
):
    """A stand-in for a backend's fused LSTM kernel (cuDNN), in keras.ops.

    Same signature and results as Keras's fused kernels, for backends that
    have none on a CPU (TensorFlow, JAX): it lets the tests prove what the
    layers hand to a fused kernel and that its result equals the loop's.
    """
    if mask is not None:
        raise NotImplementedError
    from keras import ops

    steps = ops.unstack(ops.swapaxes(sequences, 0, 1))
    if go_backwards:
        steps = steps[::-1]
    h, c = initial_state_h, initial_state_c
    outputs = []
    for x in steps:
        z = ops.matmul(x, kernel) + ops.matmul(h, recurrent_kernel)
        if bias is not None:
            z = z + bias
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        c = recurrent_activation(z_f) * c + recurrent_activation(
            z_i
        ) * activation(z_c)
        h = recurrent_activation(z_o) * activation(c)
        outputs.append(h)
    stacked = ops.stack(outputs, axis=1)
    return h, (stacked if return_sequences else stacked[:, -1:]), [h, c]

"""Gal & Ghahramani (2016) / Merity et al. (2017): embedding dropout."""

import keras
from keras import ops

from keras_recdrop import _validation
from keras_recdrop import noise
from keras_recdrop import noise_mode
from keras_recdrop import registry
from keras_recdrop.random_state import SavesRandomState


@keras.saving.register_keras_serializable(package="keras_recdrop")
class DropoutEmbedding(SavesRandomState, keras.layers.Embedding):
    """`keras.layers.Embedding` that drops whole word types in training.

    Embedding dropout (Gal & Ghahramani, 2016; the `embed_p` of Merity et
    al.'s AWD-LSTM, 2017): at every training call each row of the embedding
    matrix, i.e. each word *type* of the vocabulary, is dropped with
    probability `p`, and the kept rows are scaled by `1 / (1 - p)`. The
    decision is shared by every occurrence of the word in the batch: a
    dropped word is zero at all its positions in all samples, a kept word
    is scaled everywhere. This differs from dropout on the embedded
    outputs, which drops each occurrence (token) independently.

    Equations (training; one `m` per vocabulary row, fresh at every call):

        m_v ~ Bernoulli(1 - p),            v = 0, ..., input_dim - 1
        E' = diag(m / (1 - p)) E           (E: the (input_dim, output_dim)
                                            embedding matrix)
        y[b, t] = E'[x[b, t]] = m_{x[b,t]} / (1 - p) * E[x[b, t]]

    At inference (and for `p = 0`) `y = E[x]`, exactly the output of
    `keras.layers.Embedding`, which is also the expectation of the training
    output over the mask.

    Implementation: `E'` is never formed. One call draws the `(input_dim,)`
    mask (`input_dim` uniforms, from the layer's `SeedGenerator` through
    `keras_recdrop.noise.draw_masks`), gathers the mask values of the
    looked-up ids and multiplies the gathered embeddings: `O(input_dim)`
    random numbers plus `O(batch * length * output_dim)` products instead of
    `O(input_dim * output_dim)`, with the same result as masking the rows
    of the matrix. Gradients reach only the kept rows, scaled by
    `1 / (1 - p)`.

    Everything else is `keras.layers.Embedding`: `mask_zero`, initializers,
    regularizers, constraints, LoRA and quantization (the word-type mask is
    applied after the quantized lookup too).

    Args:
        input_dim: Positive integer, size of the vocabulary.
        output_dim: Positive integer, dimension of the embeddings.
        embeddings_dropout: Float in `[0, 1)`. Probability of dropping a word
            type (a row of the embedding matrix) in a training call.
        seed: Integer or `None`. Seed of the layer's random stream.
        embeddings_initializer: Initializer of the embedding matrix (see
            `keras.initializers`).
        embeddings_regularizer: Regularizer of the embedding matrix (see
            `keras.regularizers`).
        embeddings_constraint: Constraint of the embedding matrix (see
            `keras.constraints`).
        mask_zero: Whether the id 0 is a padding value to be masked out, as
            in `keras.layers.Embedding`.
        weights: Optional floating-point matrix of shape
            `(input_dim, output_dim)`, the initial embeddings.
        lora_rank: Optional integer: the rank of a LoRA update of the
            embeddings, as in `keras.layers.Embedding`.
        lora_alpha: Optional float scaling the LoRA update
            (`lora_alpha / lora_rank`; default: `lora_rank`).
        quantization_config: Optional quantization settings, as in
            `keras.layers.Embedding`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`, ...).

    Call arguments:
        inputs: Integer tensor of word ids, any shape, e.g.
            `(batch, length)`.
        training: Python boolean; word types are dropped only in training.

    Example:

    >>> import numpy as np, keras, keras_recdrop
    >>> ids = np.array([[1, 2, 1, 0], [2, 2, 3, 0]])
    >>> layer = keras_recdrop.DropoutEmbedding(
    ...     10, 4, embeddings_dropout=0.5, mask_zero=True, seed=1)
    >>> y = layer(ids, training=True)
    >>> tuple(y.shape)
    (2, 4, 4)
    >>> keras.ops.convert_to_numpy(layer.compute_mask(ids)).tolist()
    [[True, True, True, False], [True, True, True, False]]
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_dropout=0.0,
        seed=None,
        *,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        weights=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        embeddings_dropout = _validation.check_rate(
            "embeddings_dropout", embeddings_dropout
        )
        seed = _validation.check_seed(seed)
        super().__init__(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            mask_zero=mask_zero,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            quantization_config=quantization_config,
            **kwargs,
        )
        self.embeddings_dropout = embeddings_dropout
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        if weights is not None:
            # As `keras.layers.Embedding` does with them, once the seed
            # generator exists: a built layer takes no new state.
            self.build()
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def _random_state_generators(self):
        return [self.seed_generator]

    def _drop_word_types(self, inputs, outputs, training):
        """Multiplies each looked-up embedding by its word type's mask."""
        if not noise_mode.active(training) or self.embeddings_dropout == 0.0:
            return outputs
        ids = inputs
        if keras.backend.standardize_dtype(ids.dtype) not in (
            "int32",
            "int64",
        ):
            ids = ops.cast(ids, "int32")
        row_mask = noise.draw_masks(
            1,
            (self.input_dim,),
            self.embeddings_dropout,
            self.seed_generator,
            outputs.dtype,
        )[0]
        token_mask = ops.take(row_mask, ids, axis=0)
        return outputs * ops.expand_dims(token_mask, axis=-1)

    def call(self, inputs, training=None):
        outputs = super().call(inputs)
        return self._drop_word_types(inputs, outputs, training)

    def quantized_call(self, inputs, training=None):
        # The lookup itself takes no `training` argument (Keras 3.16 rejects
        # one); the word-type mask below is what depends on it.
        outputs = super().quantized_call(inputs)
        return self._drop_word_types(inputs, outputs, training)

    def quantize(self, mode=None, type_check=True, config=None):
        # `keras.layers.Embedding` refuses to quantize subclasses, which could
        # override `call`; this one applies its mask in `quantized_call` too.
        super().quantize(mode=mode, type_check=False, config=config)

    def compute_output_spec(self, inputs, training=None):
        return super().compute_output_spec(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embeddings_dropout": self.embeddings_dropout,
                "seed": self.seed,
            }
        )
        return config


def _word_types_are_dropped(layer):
    return layer.embeddings_dropout > 0


registry.register(
    registry.Regularizer(
        name="embedding_dropout",
        layers=(DropoutEmbedding,),
        # One word-type mask per call, for the whole batch.
        shares_noise_across_batch=_word_types_are_dropped,
        draws_noise=_word_types_are_dropped,
    )
)

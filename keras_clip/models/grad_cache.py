"""Exact gradient caching: the full-batch contrastive gradient in micro-batches.

The contrastive losses couple every pair of the (global) batch, so plain
gradient accumulation changes the loss. Gradient caching (Gao et al. 2021,
arXiv 2101.06983) keeps it exact with two passes per replica:

1. embed the batch in micro-batches of `m` pairs, keeping no activations;
2. take the loss of all the embeddings (gathered across replicas as in the
   plain step) and its gradient with respect to the embeddings and to the
   loss's own variables (temperature, SigLIP bias);
3. recompute each micro-batch with activations and back-propagate its slice
   of the cached embedding gradients (a vector-Jacobian product), summing
   the parameter gradients.

Activation memory is one micro-batch's; the price is a second forward pass.
The gradient equals the plain step's when the forward pass of a pair does
not depend on the other pairs nor on randomness: CLIP has no dropout and
LayerNorm is per sample, so the ViT models match exactly. BatchNorm (the
ResNet towers) normalises with micro-batch statistics instead (its moving
statistics are updated once per micro-batch, in pass 3). A model with
dropout would draw different masks in the two passes: not supported.
Loss scaling composes: under a `LossScaleOptimizer` the scaled loss's
gradients are cached and back-propagated, the optimizer unscales them.

`guarded_step` calls the backend's function when `model.micro_batch_size`
is set; each returns the loss, the (scaled) gradients and `y_pred`.
"""

import keras
from keras import ops


def check_micro_batch_size(micro_batch_size, batch=None):
    """Raises a one-line ValueError unless `micro_batch_size` splits `batch` (per replica).

    Example:
        >>> check_micro_batch_size(4, batch=16)
        >>> check_micro_batch_size(3, batch=16)
        Traceback (most recent call last):
        ...
        ValueError: micro_batch_size 3 must divide the per-replica batch 16 ...
    """
    if isinstance(micro_batch_size, bool) or not isinstance(micro_batch_size, int) or (
            micro_batch_size < 1):
        raise ValueError("micro_batch_size must be a positive integer (pairs per replica "
                         f"per micro-batch), received {micro_batch_size!r}.")
    if batch is None:
        return
    if micro_batch_size > batch:
        raise ValueError(f"micro_batch_size {micro_batch_size} is larger than the per-replica "
                         f"batch {batch}; use at most {batch}.")
    if batch % micro_batch_size:
        raise ValueError(f"micro_batch_size {micro_batch_size} must divide the per-replica "
                         f"batch {batch} (e.g. use a batch size that is a multiple of it).")


def forward(model, x):
    """The model's training-mode forward pass."""
    return model(x, training=True) if model._call_has_training_arg else model(x)


def forward_state_variables(model):
    """Variables the forward pass itself updates: trainable BatchNorm's moving statistics."""
    return [
        variable
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
        for variable in (layer.moving_mean, layer.moving_variance)
    ]


def _embeddings(y_pred):
    return y_pred["image_embeddings"], y_pred["text_embeddings"]


def _static_batch(x):
    return next(t for t in keras.tree.flatten(x) if t is not None).shape[0]


def tf_loss_and_grads(model, x, y, weights):
    """TensorFlow: `(loss, scaled gradients of weights, y_pred)` by gradient caching."""
    import tensorflow as tf

    m = model.micro_batch_size
    first = next(t for t in keras.tree.flatten(x) if t is not None)
    static = first.shape[0]
    checks = []
    if static is not None:
        check_micro_batch_size(m, static)
    else:  # a batch size only known when the step runs
        checks.append(tf.debugging.assert_equal(
            tf.shape(first)[0] % m, 0,
            message=f"micro_batch_size {m} must divide the per-replica batch"))
    with tf.control_dependencies(checks):
        count = tf.shape(first)[0] // m

    def chunk(i):
        return tf.nest.map_structure(lambda t: t[i * m:(i + 1) * m], x)

    # Pass 1: embeddings of every micro-batch, no tape (no activations kept).
    state = forward_state_variables(model)
    saved = [tf.identity(v.value) for v in state]

    def embed(i, images, texts):
        image, text = _embeddings(forward(model, chunk(i)))
        return (i + 1, images.write(i, tf.cast(image, "float32")),
                texts.write(i, tf.cast(text, "float32")))

    arrays = [tf.TensorArray("float32", size=count, infer_shape=False,
                             element_shape=tf.TensorShape([None, None])) for _ in range(2)]
    # One iteration at a time: TensorFlow would otherwise run up to 10 at once
    # (`parallel_iterations`), each holding a micro-batch's activations.
    _, images, texts = tf.while_loop(lambda i, *_: i < count, embed, (0, *arrays),
                                     parallel_iterations=1)
    images, texts = images.concat(), texts.concat()  # (b, D) float32
    for variable, old in zip(state, saved):  # pass 3 updates the statistics
        variable.assign(old)

    # Pass 2: the loss and its gradient w.r.t. the embeddings (and t, bias).
    weights = [w.value for w in weights]  # tf.Variables: zero gradients need tf dtypes
    with tf.GradientTape() as tape:
        tape.watch([images, texts])
        y_pred = {"image_embeddings": images, "text_embeddings": texts}
        loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None, training=True)
        scaled = model.optimizer.scale_loss(loss)
    zero = tf.UnconnectedGradients.ZERO
    image_grads, text_grads, *grads = tape.gradient(
        scaled, [images, texts, *weights], unconnected_gradients=zero)

    # Pass 3: recompute each micro-batch and back-propagate its cached gradients.
    def backward(i, *total):
        with tf.GradientTape() as tape:
            image, text = _embeddings(forward(model, chunk(i)))
        rows = slice(i * m, (i + 1) * m)
        parts = tape.gradient([image, text], weights, unconnected_gradients=zero,
                              output_gradients=[tf.cast(image_grads[rows], image.dtype),
                                                tf.cast(text_grads[rows], text.dtype)])
        return (i + 1, *[a + tf.convert_to_tensor(g) for a, g in zip(total, parts)])

    grads = [tf.convert_to_tensor(g) for g in grads]
    _, *grads = tf.while_loop(lambda i, *_: i < count, backward, (0, *grads),
                              parallel_iterations=1)
    return loss, grads, y_pred


def _jax_replicas():
    distribution = keras.distribution.distribution()
    if distribution is None or not hasattr(distribution, "batch_dim_name"):
        return 1
    mesh = distribution.device_mesh
    return mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)]


def jax_loss_and_grads(model, trainable, non_trainable, metrics_vars, optimizer_vars, x, y):
    """JAX: `(loss, scaled grads, y_pred, non_trainable, metrics_vars)` by gradient caching.

    Under `keras.distribution.DataParallel` the step sees the global batch
    sharded over `R` devices; micro-batch `j` takes rows `j*m .. (j+1)*m - 1`
    of every device's shard, so each device holds `m` pairs' activations.
    """
    import jax

    m, replicas = model.micro_batch_size, _jax_replicas()
    batch = _static_batch(x)
    if batch % replicas:
        raise ValueError(f"The global batch {batch} does not split among {replicas} devices.")
    check_micro_batch_size(m, batch // replicas)
    count = batch // replicas // m

    def split(t):  # (B, ...) -> (count, R*m, ...): chunk j holds m rows of each shard
        t = ops.reshape(t, (replicas, count, m, *t.shape[1:]))
        return ops.reshape(ops.swapaxes(t, 0, 1), (count, replicas * m, *t.shape[3:]))

    def merge(t):  # the inverse of split
        t = ops.reshape(t, (count, replicas, m, *t.shape[2:]))
        return ops.reshape(ops.swapaxes(t, 0, 1), (batch, *t.shape[3:]))

    chunks = jax.tree_util.tree_map(split, x)

    def embed(variables, state, chunk):
        y_pred, state = model.stateless_call(variables, state, chunk, training=True)
        image, text = _embeddings(y_pred)
        return (ops.cast(image, "float32"), ops.cast(text, "float32")), state

    # Pass 1: embeddings, micro-batch by micro-batch (lax.map keeps one at a time).
    images, texts = jax.lax.map(lambda chunk: embed(trainable, non_trainable, chunk)[0], chunks)
    images, texts = merge(images), merge(texts)

    # Pass 2: the loss and its gradient w.r.t. the embeddings (and t, bias).
    def loss_fn(variables, images, texts):
        y_pred = {"image_embeddings": images, "text_embeddings": texts}
        loss, (_, _, metrics) = model.stateless_compute_loss(
            variables, non_trainable, metrics_vars, x=x, y=y, y_pred=y_pred, training=True)
        mapping = list(zip(model.optimizer.variables, optimizer_vars))
        with keras.StatelessScope(state_mapping=mapping):
            scaled = model.optimizer.scale_loss(loss)
        return scaled, (loss, metrics, y_pred)

    grad_fn = jax.grad(loss_fn, argnums=(0, 1, 2), has_aux=True)
    (grads, image_grads, text_grads), (loss, metrics_vars, y_pred) = grad_fn(
        trainable, images, texts)

    # Pass 3: recompute each micro-batch and back-propagate its cached gradients.
    # Known defect: inside this while loop XLA:CPU gives the patch embedding's
    # weight-gradient convolution a layout Eigen cannot take (dim_labels
    # f01b_i01o->01bf) and emits it as a naive loop; at ViT-B/32 width one
    # iteration costs 2.5x the same body outside a loop. A Python loop keeps
    # Eigen's convolution but XLA then holds every micro-batch's activations,
    # even with optimization barriers chaining them (14.7x the plain batch-64
    # step's memory at batch 1,024; benchmarks/results/grad_cache.md).
    def backward(carry, inputs):
        total, state = carry
        chunk, image_grad, text_grad = inputs
        (image, text), vjp, state = jax.vjp(
            lambda variables: embed(variables, state, chunk), trainable, has_aux=True)
        (part,) = vjp((image_grad.astype(image.dtype), text_grad.astype(text.dtype)))
        return ([a + g for a, g in zip(total, part)], state), None

    (grads, non_trainable), _ = jax.lax.scan(
        backward, (list(grads), list(non_trainable)),
        (chunks, split(image_grads), split(text_grads)))
    return loss, grads, y_pred, non_trainable, metrics_vars


def torch_loss_and_grads(model, x, y, weights):
    """PyTorch: `(loss, scaled gradients of weights, y_pred)` by gradient caching."""
    import torch

    m = model.micro_batch_size
    batch = _static_batch(x)
    check_micro_batch_size(m, batch)
    chunks = [keras.tree.map_structure(lambda t, i=i: t[i:i + m], x) for i in range(0, batch, m)]

    # Pass 1: embeddings of every micro-batch, without autograd.
    state = forward_state_variables(model)
    saved = [v.value.detach().clone() for v in state]
    with torch.no_grad():
        pairs = [_embeddings(forward(model, chunk)) for chunk in chunks]
        for variable, old in zip(state, saved):  # pass 3 updates the statistics
            variable.assign(old)
    images = torch.cat([p[0].float() for p in pairs]).requires_grad_()
    texts = torch.cat([p[1].float() for p in pairs]).requires_grad_()

    # Pass 2: the loss and its gradient w.r.t. the embeddings (and t, bias).
    model.zero_grad()
    y_pred = {"image_embeddings": images, "text_embeddings": texts}
    loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None, training=True)
    model.optimizer.scale_loss(loss).backward()

    # Pass 3: recompute each micro-batch and back-propagate its cached gradients.
    for index, chunk in enumerate(chunks):
        image, text = _embeddings(forward(model, chunk))
        rows = slice(index * m, (index + 1) * m)
        torch.autograd.backward([image, text], [images.grad[rows].to(image.dtype),
                                                texts.grad[rows].to(text.dtype)])
    y_pred = {"image_embeddings": images.detach(), "text_embeddings": texts.detach()}
    return loss, [v.value.grad for v in weights], y_pred

"""Trees that do not match fail at trace time, naming the path (and the state field).

Parameters of another shape, missing, extra or mismatched leaves, and chains with the
wrong number of states; eager and under ``jit``, with no cost at run time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

import jopt

# --- structure errors ----------------------------------------------------------------


def _tree(w_shape=(3, 4)):
    return {"dense": {"w": jnp.ones(w_shape), "b": jnp.zeros(4)}, "scale": jnp.ones(())}


def _message(fn, *args):
    with pytest.raises(ValueError) as raised:
        fn(*args)
    return str(raised.value)


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_params_of_another_shape_name_the_path(wrap):
    optimizer = jopt.adam(1e-3, weight_decay=0.1)
    grads = _tree()
    state = optimizer.init(grads)
    message = _message(wrap(optimizer.update), grads, state, _tree((4, 3)))
    assert message == "updates['dense']['w']: shape (3, 4) vs params (4, 3)"


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_state_of_another_shape_names_the_path_and_the_field(wrap):
    optimizer = jopt.adam(1e-3)
    state = optimizer.init(_tree((4, 3)))
    message = _message(wrap(optimizer.update), _tree(), state, _tree())
    assert message == "updates['dense']['w']: shape (3, 4) vs state.mu (4, 3)"


def test_a_missing_leaf_is_named():
    optimizer = jopt.rmsprop(1e-3, centered=True)
    state = optimizer.init(_tree())
    grads = _tree()
    del grads["dense"]["b"]
    message = _message(optimizer.update, grads, state)
    assert message == "state.mu['dense']['b']: present in state.mu but not in updates"


def test_an_extra_leaf_is_named():
    optimizer = jopt.adagrad(1e-2)
    state = optimizer.init(_tree())
    grads = {**_tree(), "extra": jnp.ones(2)}
    message = _message(optimizer.update, grads, state)
    assert message == "updates['extra']: present in updates but not in state.sum_of_squares"


def test_a_leaf_against_a_subtree_is_named():
    optimizer = jopt.momentum(1e-2)
    state = optimizer.init({"a": {"x": jnp.ones(2)}, "b": jnp.ones(2)})
    grads = {"a": {"x": jnp.ones(2)}, "b": {"y": jnp.ones(2)}}
    message = _message(optimizer.update, grads, state)
    assert "['b']" in message and "state" in message


@pytest.mark.parametrize(
    "optimizer",
    [
        jopt.sgd(0.1),
        jopt.sgd(0.1, momentum=0.9),
        jopt.adagrad(),
        jopt.adadelta(),
        jopt.rmsprop(),
        jopt.adam(),
        jopt.adamw(),
        jopt.adamax(),
        jopt.adam(lambda count: 0.1 / (1 + count)),
    ],
    ids=[
        "sgd",
        "momentum",
        "adagrad",
        "adadelta",
        "rmsprop",
        "adam",
        "adamw",
        "adamax",
        "adam-schedule",
    ],
)
def test_every_optimizer_checks_params_at_trace_time(optimizer):
    """``jax.eval_shape`` only traces: the error comes from shapes, before any compute."""
    grads = _tree()
    state = optimizer.init(grads)
    message = _message(jax.eval_shape, optimizer.update, grads, state, _tree((4, 3)))
    assert message.startswith("updates['dense']['w']: shape (3, 4) vs ")
    assert message.endswith(" (4, 3)")


def test_a_chain_with_the_wrong_number_of_states():
    optimizer = jopt.adam(1e-3, weight_decay=0.1)  # three blocks
    message = _message(optimizer.update, _tree(), jopt.adam(1e-3).init(_tree()))
    assert "chain of 3 transformations" in message and "length 2" in message


def test_structure_checks_cost_nothing_at_run_time():
    """Passing params (which are checked against the updates) adds no operation to the
    staged program of an optimizer that does not otherwise use them."""
    optimizer = jopt.adam(1e-3)
    grads = _tree()
    state = optimizer.init(grads)
    with_params = jax.make_jaxpr(optimizer.update)(grads, state, grads)
    without = jax.make_jaxpr(lambda g, s: optimizer.update(g, s))(grads, state)
    assert len(with_params.jaxpr.eqns) == len(without.jaxpr.eqns)
    assert str(with_params.jaxpr.eqns) == str(without.jaxpr.eqns)

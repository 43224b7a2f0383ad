"""The Ticket IR: weights, nodes, neuron layers and the validated graph."""

from .graph import Edge, Encoding, Ticket, nodes_equal, sequential, tickets_equal
from .neurons import IF, LI, LIF, RLIF, NeuronLayer
from .nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d, float_linear
from .weights import BinaryWeights, FloatWeights, Int8Weights, Weights, binarize, dense_weights, density

__all__ = [
    "Add", "AvgPool2d", "BinaryWeights", "Conv2d", "Edge", "Encoding", "Flatten", "FloatWeights", "IF", "Input",
    "Int8Weights", "LI", "LIF", "Linear", "MaxPool2d", "NeuronLayer", "Node", "Output", "RLIF", "SumPool2d", "Ticket",
    "Weights", "binarize", "dense_weights", "density", "float_linear", "nodes_equal", "sequential", "tickets_equal",
]

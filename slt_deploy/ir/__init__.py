"""The Ticket IR: weights, nodes, neuron layers and the validated graph."""

from .graph import Edge, Encoding, Ticket, nodes_equal, sequential, tickets_equal
from .neurons import IF, LI, LIF, RLIF, NeuronLayer
from .nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d, float_linear
from .tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose
from .weights import BinaryWeights, FloatWeights, Int8Weights, Weights, binarize, dense_weights, density

__all__ = [
    "Add", "AvgPool2d", "BinaryWeights", "Conv2d", "Edge", "Encoding", "Flatten", "FloatWeights", "IF", "Input",
    "Int8Weights", "LI", "LIF", "Linear", "MatMul", "MaxPool2d", "Mul", "NeuronLayer", "Node", "Output", "RLIF",
    "Reduce", "Reshape", "Select", "SumPool2d", "Ticket", "Transpose",
    "Weights", "binarize", "dense_weights", "density", "float_linear", "nodes_equal", "sequential", "tickets_equal",
]

"""jinvert: understanding image representations by inverting them, in JAX."""

from jinvert.representation import Representation
from jinvert.representations.hog import hog
from jinvert.representations.dsift import dsift

__version__ = "0.1.0"

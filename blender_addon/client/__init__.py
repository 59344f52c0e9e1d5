"""ZeroMQ client of the Human3R server (no bpy, no torch): see `zmq_client.Human3RClient`."""
from .zmq_client import Human3RClient

__all__ = ["Human3RClient"]

"""One adapter per platform technology, each implementing `broker.ports.Platform`."""

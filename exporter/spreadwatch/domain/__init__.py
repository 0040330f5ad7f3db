"""The domain: pure rules of the product (values in, values out; no I/O, clock or logging)."""

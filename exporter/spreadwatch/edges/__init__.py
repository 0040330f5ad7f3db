"""The edges: one module per outside library, file format or protocol."""

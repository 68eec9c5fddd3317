"""Reusable secure building blocks: each one owns its secure defaults so stacks cannot forget them."""

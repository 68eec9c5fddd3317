"""The render job: mesh -> USD, scene spec, render backends (gl, isaac), YOLO dataset writer, shards."""

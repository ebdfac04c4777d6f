"""evkafka's benchmark harness: `python -m bench` (or `make bench`); see bench/__main__.py."""

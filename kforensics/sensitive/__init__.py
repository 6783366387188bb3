"""Which workloads matter most: declared in `sensitive.yaml`, proposed from the case."""
